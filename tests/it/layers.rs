//! The layering check: every reference from one of our modules to another must point down the
//! layer table below (issue 12), peers of one layer stay apart, and no files form a cycle.
//!
//! Why a test that parses the sources with `syn` rather than grepping `use crate::` lines or
//! running an external tool: a parser is immune to formatting (a `use` split over lines, a
//! grouped `use crate::{a::X, b::{self, Y}}`, `pub use`), sees paths written inside code and
//! types (`crate::store::Db::connect(..)`, `super::super::x`), and with a look into macro token
//! streams also those inside `stream! { .. }` or `macro_rules!` bodies; `include!`d files count
//! as part of the module that includes them. It runs with `cargo test` like everything else, on
//! any machine, with nothing to install (`cargo modules` would need its own toolchain-pinned
//! binary and answers in a format we would have to parse anyway).
//!
//! What it enforces, from the table `LAYERS` (bottom → top; the crate root, `lib.rs` and
//! `main.rs`, sits above every layer and may use anything):
//! 1. a file references only modules of its own layer or below;
//! 2. the modules of one layer (peers) do not reference each other;
//! 3. no cycle between files (a path counts for the deepest module file it names), except that
//!    a module's own file (`mod.rs`, `lib.rs`) may use its descendants (a facade re-exporting
//!    its parts);
//! 4. every top-level module is in the table (add a new one where it belongs).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use proc_macro2::{Spacing, TokenStream, TokenTree};
use syn::spanned::Spanned;
use syn::visit::{self, Visit};

/// Bottom → top. Edit here: one line per layer, its top-level modules (`src/<name>.rs` or
/// `src/<name>/`). Modules on one line are peers and must not use each other.
const LAYERS: &[&[&str]] = &[
    &["domain"],
    &["ingest", "store"],
    // Notifications and device commands: the store and the network, nothing of the web.
    &["realtime", "notify", "downlink"],
    &["web"],
    &["server"],
    // The command line's flags and the log format: read by the assembly above.
    &["config", "logging"],
    &["app", "cli", "demo"],
];

/// What a check found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    NotInTable,
    Upward,
    Peer,
    Cycle,
}

#[derive(Debug)]
struct Violation {
    rule: Rule,
    message: String,
}

/// One reference to one of our modules, resolved to an absolute path (`crate::…`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Reference {
    file: String,
    line: usize,
    written: String,
    /// Absolute, without the leading `crate`.
    path: Vec<String>,
}

/// A path as written, before resolution, with the module it was written in.
struct RawRef {
    segments: Vec<String>,
    module: Vec<String>,
    line: usize,
}

/// A parsed source file and where it sits in the module tree.
struct FileInfo {
    path: String,
    /// Its module path without `crate` (empty for `lib.rs` and `main.rs`).
    module: Vec<String>,
    /// `src/main.rs`: the binary, whose `sensorcast::…` paths mean `crate::…`.
    binary: bool,
    /// Files it `include!`s (paths as in `FileInfo::path`).
    includes: Vec<String>,
    /// Inline modules (`mod tests { … }`), absolute.
    inline_modules: Vec<Vec<String>>,
    refs: Vec<RawRef>,
}

/// `src/a/b.rs` → `[a, b]`, `src/a/mod.rs` → `[a]`, `src/lib.rs` and `src/main.rs` → `[]`.
fn module_of_file(path: &str) -> Vec<String> {
    let rel = path.strip_prefix("src/").unwrap_or(path);
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    if rel == "lib" || rel == "main" {
        return Vec::new();
    }
    let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// Collects, while walking one file, every path that may name one of our modules.
struct Collector {
    /// The module being walked (the file's, then nested inline modules).
    module: Vec<String>,
    inline_modules: Vec<Vec<String>>,
    includes: Vec<String>,
    refs: Vec<RawRef>,
}

impl Collector {
    fn push(&mut self, segments: Vec<String>, line: usize) {
        self.refs.push(RawRef {
            segments,
            module: self.module.clone(),
            line,
        });
    }

    /// Every full path of a `use` tree: groups expanded, `self` in a group naming its prefix.
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.use_leaf(prefix, &n.ident),
            syn::UseTree::Rename(r) => self.use_leaf(prefix, &r.ident),
            syn::UseTree::Glob(g) => {
                if !prefix.is_empty() {
                    self.push(prefix.clone(), line_of(g.span()));
                }
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    fn use_leaf(&mut self, prefix: &[String], ident: &syn::Ident) {
        let mut segments = prefix.to_vec();
        if ident != "self" {
            segments.push(ident.to_string());
        }
        self.push(segments, line_of(ident.span()));
    }

    /// Paths inside a macro's tokens: `a :: b :: c` runs that do not continue an earlier path.
    fn tokens(&mut self, tokens: TokenStream) {
        enum Tok {
            Ident(String, usize),
            Colon2,
            Other,
        }
        let mut flat = Vec::new();
        let mut iter = tokens.into_iter().peekable();
        while let Some(tt) = iter.next() {
            match tt {
                TokenTree::Ident(i) => flat.push(Tok::Ident(i.to_string(), line_of(i.span()))),
                TokenTree::Punct(p)
                    if p.as_char() == ':'
                        && p.spacing() == Spacing::Joint
                        && matches!(iter.peek(), Some(TokenTree::Punct(q)) if q.as_char() == ':') =>
                {
                    iter.next();
                    flat.push(Tok::Colon2);
                }
                TokenTree::Group(g) => {
                    self.tokens(g.stream());
                    flat.push(Tok::Other);
                }
                _ => flat.push(Tok::Other),
            }
        }
        let mut i = 0;
        while i < flat.len() {
            let continues = i > 0 && matches!(flat[i - 1], Tok::Colon2);
            if let (Tok::Ident(first, line), false) = (&flat[i], continues) {
                let mut segments = vec![first.clone()];
                let mut j = i + 1;
                while let (Some(Tok::Colon2), Some(Tok::Ident(next, _))) =
                    (flat.get(j), flat.get(j + 1))
                {
                    segments.push(next.clone());
                    j += 2;
                }
                if segments.len() > 1 {
                    self.push(segments, *line);
                    i = j;
                    continue;
                }
            }
            i += 1;
        }
    }
}

fn line_of(span: proc_macro2::Span) -> usize {
    span.start().line
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.module.push(m.ident.to_string());
        if m.content.is_some() {
            self.inline_modules.push(self.module.clone());
        }
        visit::visit_item_mod(self, m);
        self.module.pop();
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        // `use ::name` is always another crate.
        if u.leading_colon.is_none() {
            self.use_tree(&mut Vec::new(), &u.tree);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() && p.segments.len() > 1 {
            let segments = p.segments.iter().map(|s| s.ident.to_string()).collect();
            self.push(segments, line_of(p.span()));
        }
        visit::visit_path(self, p);
    }

    // `pub(crate)`, `pub(in crate::x)` say who may see an item, not what it uses.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        visit::visit_macro(self, m);
    }

    fn visit_item_macro(&mut self, m: &'ast syn::ItemMacro) {
        if m.mac.path.is_ident("include") {
            if let Ok(file) = m.mac.parse_body::<syn::LitStr>() {
                self.includes.push(file.value());
            }
        }
        visit::visit_item_macro(self, m);
    }
}

fn parse_file(path: &str, text: &str) -> FileInfo {
    let ast = syn::parse_file(text).unwrap_or_else(|e| panic!("{path}: does not parse: {e}"));
    let module = module_of_file(path);
    let mut c = Collector {
        module: module.clone(),
        inline_modules: Vec::new(),
        includes: Vec::new(),
        refs: Vec::new(),
    };
    c.visit_file(&ast);
    let dir = Path::new(path).parent().unwrap_or(Path::new(""));
    let includes = c
        .includes
        .iter()
        .map(|f| dir.join(f).to_string_lossy().replace('\\', "/"))
        .collect();
    FileInfo {
        path: path.to_string(),
        module,
        binary: path == "src/main.rs",
        includes,
        inline_modules: c.inline_modules,
        refs: c.refs,
    }
}

/// Where every module lives: module path → the file that defines it (inline modules map to
/// their enclosing file), plus the files each `include!`d file belongs to.
struct Tree {
    files: Vec<FileInfo>,
    module_file: BTreeMap<Vec<String>, String>,
    /// Included file → the files that include it.
    included_by: BTreeMap<String, Vec<String>>,
}

impl Tree {
    fn build(sources: &[(&str, &str)]) -> Tree {
        let mut files: Vec<FileInfo> = sources
            .iter()
            .map(|(path, text)| parse_file(path, text))
            .collect();
        let mut included_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut include_module = BTreeMap::new();
        for f in &files {
            for inc in &f.includes {
                included_by
                    .entry(inc.clone())
                    .or_default()
                    .push(f.path.clone());
                include_module.insert(inc.clone(), f.module.clone());
            }
        }
        // An included file's code is part of the module that includes it.
        for f in &mut files {
            if let Some(module) = include_module.get(&f.path) {
                let own = std::mem::replace(&mut f.module, module.clone());
                for r in &mut f.refs {
                    let rest = r.module.split_off(own.len());
                    r.module = module.iter().cloned().chain(rest).collect();
                }
            }
        }
        let mut module_file = BTreeMap::new();
        for f in files.iter().filter(|f| !f.binary) {
            if !included_by.contains_key(&f.path) {
                module_file.insert(f.module.clone(), f.path.clone());
            }
            for m in &f.inline_modules {
                module_file
                    .entry(m.clone())
                    .or_insert_with(|| f.path.clone());
            }
        }
        Tree {
            files,
            module_file,
            included_by,
        }
    }

    fn is_module(&self, path: &[String]) -> bool {
        self.module_file.contains_key(path)
    }

    /// The absolute path a written path names, when it names something of ours.
    fn resolve(&self, file: &FileInfo, raw: &RawRef) -> Option<Vec<String>> {
        let segs = &raw.segments;
        let first = segs.first()?.as_str();
        match first {
            // `$crate` in a macro body is `$` and then `crate`.
            "crate" => Some(segs[1..].to_vec()),
            "sensorcast" if file.binary => Some(segs[1..].to_vec()),
            "self" | "super" => {
                let mut at = raw.module.clone();
                let mut rest = segs.as_slice();
                if rest[0] == "self" {
                    rest = &rest[1..];
                }
                while rest.first().is_some_and(|s| s == "super") {
                    at.pop()?;
                    rest = &rest[1..];
                }
                at.extend(rest.iter().cloned());
                Some(at)
            }
            // A child module of the module it is written in (`use hub::Hub;` in realtime/mod.rs).
            _ if !file.binary => {
                let mut child = raw.module.clone();
                child.push(first.to_string());
                self.is_module(&child).then(|| {
                    let mut at = raw.module.clone();
                    at.extend(segs.iter().cloned());
                    at
                })
            }
            _ => None,
        }
    }

    /// The deepest module a path goes through (the crate root at least).
    fn deepest_module<'a>(&self, path: &'a [String]) -> &'a [String] {
        (0..=path.len())
            .rev()
            .map(|n| &path[..n])
            .find(|p| self.is_module(p))
            .unwrap_or(&path[..0])
    }

    fn references(&self) -> Vec<Reference> {
        let mut out = BTreeSet::new();
        for f in &self.files {
            for raw in &f.refs {
                if let Some(path) = self.resolve(f, raw) {
                    out.insert(Reference {
                        file: f.path.clone(),
                        line: raw.line,
                        written: raw.segments.join("::"),
                        path,
                    });
                }
            }
        }
        out.into_iter().collect()
    }
}

/// The layer a top-level module (or the crate root, `None`) is on; `Err` when not in the table.
fn layer_of(top: Option<&str>) -> Result<usize, ()> {
    match top {
        None => Ok(LAYERS.len()),
        Some(name) => LAYERS
            .iter()
            .position(|layer| layer.contains(&name))
            .ok_or(()),
    }
}

fn describe(top: Option<&str>) -> String {
    match (top, layer_of(top)) {
        (None, _) => format!("the crate root (layer {})", LAYERS.len()),
        (Some(name), Ok(layer)) => format!("{name} (layer {layer})"),
        (Some(name), Err(())) => name.to_string(),
    }
}

/// Runs every rule over `sources` (path relative to the package, such as `src/web/mod.rs`, and
/// its text).
fn check(sources: &[(&str, &str)]) -> Vec<Violation> {
    let tree = Tree::build(sources);
    let mut out = Vec::new();

    // 4. Every top-level module is in the table.
    let mut tops: BTreeMap<&str, &str> = BTreeMap::new();
    for f in &tree.files {
        if let Some(top) = f.module.first() {
            tops.entry(top.as_str()).or_insert(f.path.as_str());
        }
    }
    for (top, file) in &tops {
        if layer_of(Some(top)).is_err() {
            out.push(Violation {
                rule: Rule::NotInTable,
                message: format!(
                    "{file}: module `{top}` is not in the layer table: add it to LAYERS in \
                     tests/it/layers.rs, on the layer where it belongs"
                ),
            });
        }
    }

    // 1 and 2, reference by reference (one report per line and module used: a grouped `use`
    // of five names from one module is one violation); and the file graph for 3.
    let refs = tree.references();
    type Broken = (Rule, String, String, usize);
    let mut broken: BTreeMap<(&str, usize, &[String]), Broken> = BTreeMap::new();
    let mut edges: BTreeMap<String, BTreeMap<String, &Reference>> = BTreeMap::new();
    for r in &refs {
        let file = tree.files.iter().find(|f| f.path == r.file).expect("file");
        let target = tree.deepest_module(&r.path);
        let (from, to) = (
            file.module.first().map(String::as_str),
            target.first().map(String::as_str),
        );
        let rule = match (from != to, layer_of(from), layer_of(to)) {
            (true, Ok(lf), Ok(lt)) if lt > lf => Some((
                Rule::Upward,
                format!("upward: {} must not use {}", describe(from), describe(to)),
            )),
            (true, Ok(lf), Ok(lt)) if lt == lf && lf < LAYERS.len() => Some((
                Rule::Peer,
                format!(
                    "peers: {} must not use {} (same layer)",
                    describe(from),
                    describe(to)
                ),
            )),
            _ => None,
        };
        if let Some((rule, why)) = rule {
            let resolved = std::iter::once("crate")
                .chain(r.path.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join("::");
            broken
                .entry((r.file.as_str(), r.line, target))
                .and_modify(|(_, _, _, more)| *more += 1)
                .or_insert_with(|| {
                    let at = format!("{}:{}: `{}` ({resolved})", r.file, r.line, r.written);
                    (rule, at, why, 0)
                });
        }
        // 3. The file graph: a module's own file may use its descendants.
        let Some(target_file) = tree.module_file.get(target) else {
            continue;
        };
        let sources = tree
            .included_by
            .get(&r.file)
            .cloned()
            .unwrap_or_else(|| vec![r.file.clone()]);
        for source in sources {
            let source_module = module_of_file(&source);
            let facade = target.len() > source_module.len() && target.starts_with(&source_module);
            if source != *target_file && !facade {
                edges
                    .entry(source)
                    .or_default()
                    .entry(target_file.clone())
                    .or_insert(r);
            }
        }
    }
    for ((_, _, target), (rule, at, why, more)) in broken {
        let more = match more {
            0 => String::new(),
            n => format!(" and {n} more from crate::{}", target.join("::")),
        };
        out.push(Violation {
            rule,
            message: format!("{at}{more}: {why}"),
        });
    }
    for component in strongly_connected(&edges) {
        let members: BTreeSet<&String> = component.iter().collect();
        let mut why = Vec::new();
        for from in &component {
            for (to, r) in edges.get(from).into_iter().flatten() {
                if members.contains(to) {
                    why.push(format!(
                        "  {from} → {to} ({}:{}: `{}`)",
                        r.file, r.line, r.written
                    ));
                }
            }
        }
        out.push(Violation {
            rule: Rule::Cycle,
            message: format!(
                "cycle between {} files: {}\n{}",
                component.len(),
                component.join(", "),
                why.join("\n")
            ),
        });
    }
    out
}

/// Tarjan's algorithm: the components of more than one file.
fn strongly_connected(edges: &BTreeMap<String, BTreeMap<String, &Reference>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, &'a Reference>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.edges.get(v).into_iter().flat_map(|m| m.keys()) {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let low = s.low[w.as_str()].min(s.low[v]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w.as_str()) {
                let low = s.index[w.as_str()].min(s.low[v]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// Every `.rs` file under `dir`, as (path relative to the package, text), in a stable order.
fn read_sources(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_sources(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under the package");
            let text = std::fs::read_to_string(&path).expect("read source");
            out.push((rel.to_string_lossy().replace('\\', "/"), text));
        }
    }
}

#[test]
fn the_source_tree_follows_the_layer_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = Vec::new();
    read_sources(root, &root.join("src"), &mut sources);
    let sources: Vec<(&str, &str)> = sources
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    assert!(sources.len() > 10, "src/ found: {}", sources.len());
    let violations = check(&sources);
    assert!(
        violations.is_empty(),
        "{} layering violations (layers bottom → top: {:?}, then the crate root):\n{}",
        violations.len(),
        LAYERS,
        violations
            .iter()
            .map(|v| v.message.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The checker itself, on small trees written here
// ---------------------------------------------------------------------------------------------

/// A small tree that follows the table; tests add or change one file.
fn clean_tree() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "src/lib.rs",
            "pub mod domain; pub mod ingest; pub mod store; pub mod realtime; pub mod web;\n\
             pub use web::routes;\n\
             pub fn now_ms() -> i64 { domain::clock::now() }",
        ),
        ("src/main.rs", "fn main() { sensorcast::web::routes(); }"),
        ("src/domain/mod.rs", "pub mod clock; pub struct Reading;"),
        ("src/domain/clock.rs", "pub fn now() -> i64 { 0 }"),
        (
            "src/ingest/mod.rs",
            "pub mod parse;\nuse crate::domain::Reading;\npub use parse::parse;",
        ),
        (
            "src/ingest/parse.rs",
            "use super::super::domain::{self, Reading};\n\
             pub fn parse() -> Reading { let _ = domain::clock::now(); Reading }",
        ),
        (
            "src/store/mod.rs",
            "pub mod writer;\npub use self::writer::Writer;\n\
             pub struct Db;\n\
             #[cfg(test)] mod tests { use super::*; }",
        ),
        (
            "src/store/writer.rs",
            "use crate::store::Db;\npub struct Writer(Db, crate::domain::Reading);",
        ),
        (
            "src/realtime/mod.rs",
            "pub fn hub(_: &crate::store::Db) { let _ = async_stream::stream! { crate::domain::clock::now(); }; }",
        ),
        (
            "src/web/mod.rs",
            "use crate::{realtime, store::{self, Writer}};\n\
             pub fn routes() { realtime::hub(&store::Db); }",
        ),
    ]
}

fn with(
    mut tree: Vec<(&'static str, &'static str)>,
    file: (&'static str, &'static str),
) -> Vec<(&'static str, &'static str)> {
    match tree.iter_mut().find(|(p, _)| *p == file.0) {
        Some(slot) => *slot = file,
        None => tree.push(file),
    }
    tree
}

fn rules(violations: &[Violation]) -> Vec<Rule> {
    violations.iter().map(|v| v.rule).collect()
}

#[test]
fn a_clean_tree_passes() {
    let violations = check(&clean_tree());
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn an_upward_import_fails_with_file_line_and_path() {
    let tree = with(
        clean_tree(),
        (
            "src/store/writer.rs",
            "use crate::store::Db;\n\nuse crate::web::routes;",
        ),
    );
    let violations = check(&tree);
    assert_eq!(rules(&violations), [Rule::Upward], "{violations:#?}");
    let message = &violations[0].message;
    assert!(
        message.starts_with("src/store/writer.rs:3: `crate::web::routes`"),
        "{message}"
    );
    assert!(
        message.contains("store (layer 1) must not use web (layer 3)"),
        "{message}"
    );
}

#[test]
fn using_the_crate_root_from_a_layer_is_upward() {
    let tree = with(
        clean_tree(),
        (
            "src/domain/clock.rs",
            "pub fn now() -> i64 { crate::now_ms() }",
        ),
    );
    let violations = check(&tree);
    assert!(
        rules(&violations).contains(&Rule::Upward),
        "{violations:#?}"
    );
    assert!(
        violations[0]
            .message
            .contains("must not use the crate root"),
        "{violations:#?}"
    );
}

#[test]
fn a_peer_import_fails() {
    let tree = with(
        clean_tree(),
        (
            "src/ingest/parse.rs",
            "pub fn parse() { let _db = crate::store::Db; }",
        ),
    );
    let violations = check(&tree);
    assert_eq!(rules(&violations), [Rule::Peer], "{violations:#?}");
    assert!(
        violations[0]
            .message
            .starts_with("src/ingest/parse.rs:1: `crate::store::Db`"),
        "{violations:#?}"
    );
}

#[test]
fn a_three_file_cycle_fails_and_names_its_files() {
    let tree = with(
        with(
            with(
                clean_tree(),
                ("src/store/mod.rs", "pub mod a; pub mod b; pub mod c;"),
            ),
            ("src/store/a.rs", "use crate::store::b::B; pub struct A;"),
        ),
        ("src/store/b.rs", "use super::c::C; pub struct B;"),
    );
    let tree = with(
        tree,
        ("src/store/c.rs", "pub struct C(crate::store::a::A);"),
    );
    let tree = with(tree, ("src/store/writer.rs", ""));
    let violations = check(&tree);
    assert_eq!(rules(&violations), [Rule::Cycle], "{violations:#?}");
    let message = &violations[0].message;
    assert!(
        message.contains("src/store/a.rs, src/store/b.rs, src/store/c.rs"),
        "{message}"
    );
    assert!(
        message.contains("src/store/b.rs:1: `super::c::C`"),
        "{message}"
    );
}

#[test]
fn a_facade_using_its_parts_is_no_cycle_but_a_part_using_a_sibling_back_is() {
    let facade = with(
        clean_tree(),
        (
            "src/store/writer.rs",
            "use crate::store::Db; pub struct Writer;",
        ),
    );
    assert!(check(&facade).is_empty(), "{:#?}", check(&facade));
    let tree = with(
        with(
            facade,
            (
                "src/store/mod.rs",
                "pub mod writer; pub mod other; pub struct Db;",
            ),
        ),
        (
            "src/store/other.rs",
            "pub fn f() { crate::store::writer::Writer; }",
        ),
    );
    let tree = with(
        tree,
        (
            "src/store/writer.rs",
            "pub struct Writer; fn g() { super::other::f() }",
        ),
    );
    assert_eq!(rules(&check(&tree)), [Rule::Cycle]);
}

#[test]
fn a_grouped_use_is_seen_branch_by_branch() {
    let tree = with(
        clean_tree(),
        (
            "src/store/writer.rs",
            "use crate::{\n    domain::Reading,\n    realtime::{self as rt},\n    store::Db,\n};",
        ),
    );
    let violations = check(&tree);
    assert_eq!(rules(&violations), [Rule::Upward], "{violations:#?}");
    assert!(
        violations[0]
            .message
            .starts_with("src/store/writer.rs:3: `crate::realtime`"),
        "{violations:#?}"
    );
}

#[test]
fn names_from_one_module_on_one_line_are_one_violation() {
    let tree = with(
        clean_tree(),
        (
            "src/ingest/parse.rs",
            "use crate::store::{Db, Writer, writer::Mode};",
        ),
    );
    let violations = check(&tree);
    assert_eq!(
        rules(&violations),
        [Rule::Peer, Rule::Peer],
        "{violations:#?}"
    );
    assert!(
        violations[0]
            .message
            .starts_with("src/ingest/parse.rs:1: `crate::store::Db` (crate::store::Db) and 1 more from crate::store:"),
        "{violations:#?}"
    );
    assert!(
        violations[1]
            .message
            .starts_with("src/ingest/parse.rs:1: `crate::store::writer::Mode`"),
        "{violations:#?}"
    );
}

#[test]
fn super_super_is_resolved_to_the_absolute_module() {
    let tree = with(
        with(
            clean_tree(),
            (
                "src/store/mod.rs",
                "pub mod sql; pub mod writer; pub struct Db;",
            ),
        ),
        ("src/store/sql/mod.rs", "pub mod rows;"),
    );
    let tree = with(
        tree,
        (
            "src/store/sql/rows.rs",
            "use super::super::writer::Writer;\nfn f() { super::super::super::web::routes() }",
        ),
    );
    let built = Tree::build(&tree);
    let paths: Vec<String> = built
        .references()
        .into_iter()
        .filter(|r| r.file == "src/store/sql/rows.rs")
        .map(|r| format!("{}:{}", r.line, r.path.join("::")))
        .collect();
    assert_eq!(paths, ["1:store::writer::Writer", "2:web::routes"]);
    let violations = check(&tree);
    assert_eq!(rules(&violations), [Rule::Upward], "{violations:#?}");
    assert!(
        violations[0].message.contains("(crate::web::routes)"),
        "{violations:#?}"
    );
}

#[test]
fn paths_inside_macros_and_included_files_count() {
    let tree = with(
        clean_tree(),
        ("src/store/writer.rs", "include!(\"sql.rs\");"),
    );
    let tree = with(tree, ("src/store/sql.rs", "fn f() { super::Db; }"));
    let tree = with(
        tree,
        (
            "src/domain/clock.rs",
            "pub fn now() -> i64 { tracing::info!(\"{}\", crate::ingest::parse()); 0 }",
        ),
    );
    let violations = check(&tree);
    assert_eq!(rules(&violations), [Rule::Upward], "{violations:#?}");
    assert!(
        violations[0]
            .message
            .starts_with("src/domain/clock.rs:1: `crate::ingest::parse`"),
        "{violations:#?}"
    );
    // `super::Db` in the included file is resolved from the including module (store::writer).
    let built = Tree::build(&tree);
    assert!(built
        .references()
        .iter()
        .any(|r| r.file == "src/store/sql.rs" && r.path == ["store", "Db"]));
}

#[test]
fn a_module_missing_from_the_table_fails_and_says_to_add_it() {
    let tree = with(clean_tree(), ("src/alarms/mod.rs", "pub struct Alarm;"));
    let violations = check(&tree);
    assert_eq!(rules(&violations), [Rule::NotInTable], "{violations:#?}");
    assert!(violations[0]
        .message
        .contains("module `alarms` is not in the layer table: add it"));
}
