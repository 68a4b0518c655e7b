//! The OpenAPI document against the code and the live server: every `/api` route of the router
//! is described (a syn scan of src/, so a new route cannot be forgotten), and schemathesis
//! (PyPI; `.ci/run` installs it) fuzzes every operation but the never-ending event stream,
//! signed in as the admin, on both databases: no 5xx, every status and body as described, and
//! no internal detail in any body. Without schemathesis the fuzzing says so loudly and skips,
//! unless SENSORCAST_REQUIRE_SCHEMATHESIS=1 (CI).

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use syn::visit::{self, Visit};

use super::support::*;

/// Most generated cases per operation and phase, and the seed (the same cases each run).
const MAX_EXAMPLES: &str = "50";
const SEED: &str = "20261203";
/// Not fuzzed: a stream answers 200 and then never ends.
const NOT_FUZZED: &str = "/api/realtime";

const METHODS: &[&str] = &["get", "post", "put", "delete", "patch", "head", "options"];

/// `(path, method)` of every `.route("/api/…", …)` in src/, read from the sources.
fn routed() -> BTreeSet<(String, String)> {
    #[derive(Default)]
    struct Routes(BTreeSet<(String, String)>);
    /// The HTTP methods a method router expression names (`get(h).post(g)`, `post(h).get(p)`).
    #[derive(Default)]
    struct Methods(BTreeSet<String>);
    impl<'ast> Visit<'ast> for Methods {
        fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
            let name = call.method.to_string();
            if METHODS.contains(&name.as_str()) {
                self.0.insert(name);
            }
            visit::visit_expr_method_call(self, call);
        }
        fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
            if let syn::Expr::Path(p) = &*call.func {
                if let Some(last) = p.path.segments.last() {
                    let name = last.ident.to_string();
                    if METHODS.contains(&name.as_str()) {
                        self.0.insert(name);
                    }
                }
            }
            visit::visit_expr_call(self, call);
        }
    }
    impl<'ast> Visit<'ast> for Routes {
        // `#[cfg(test)]` modules build routers of their own, which are never served.
        fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
            let test_only = m.attrs.iter().any(|a| {
                a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test")
            });
            if !test_only {
                visit::visit_item_mod(self, m);
            }
        }

        fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
            if call.method == "route" && call.args.len() == 2 {
                if let syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(path),
                    ..
                }) = &call.args[0]
                {
                    let path = path.value();
                    if path.starts_with("/api/") {
                        let mut methods = Methods::default();
                        methods.visit_expr(&call.args[1]);
                        assert!(!methods.0.is_empty(), "no method found for {path}");
                        for m in methods.0 {
                            self.0.insert((path.clone(), m));
                        }
                    }
                } else {
                    // A path this scan cannot read could hide an undescribed route.
                    panic!("a .route( whose path is not a string literal: write it inline");
                }
            }
            visit::visit_expr_method_call(self, call);
        }
    }
    let mut routes = Routes::default();
    // All of src/, so a router built anywhere is seen.
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                let file = syn::parse_file(&text).expect("parse");
                routes.visit_file(&file);
            }
        }
    }
    routes.0
}

/// `(path, method)` of every operation in the document.
fn described() -> BTreeSet<(String, String)> {
    let doc: serde_json::Value =
        serde_json::from_str(sensorcast::web::openapi::json()).expect("the document is JSON");
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if METHODS.contains(&method.as_str()) {
                ops.insert((path.clone(), method.clone()));
            }
        }
    }
    ops
}

#[test]
fn every_api_route_is_described_and_nothing_else() {
    let routed = routed();
    let described = described();
    // Sanity: the scan finds the routes it must.
    for op in [
        ("/api/devices", "get"),
        ("/api/devices/{device_id}/rules", "put"),
    ] {
        assert!(
            routed.contains(&(op.0.into(), op.1.into())),
            "scan missed {op:?}"
        );
    }
    let missing: Vec<_> = routed.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "routes under /api not in the OpenAPI document (add #[utoipa::path] and list the \
         handler in src/web/openapi.rs): {missing:?}"
    );
    let extra: Vec<_> = described.difference(&routed).collect();
    assert!(extra.is_empty(), "described but not routed: {extra:?}");
}

fn schemathesis_available() -> bool {
    Command::new("st")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn fuzz(backend: Backend) {
    if !schemathesis_available() {
        if std::env::var("SENSORCAST_REQUIRE_SCHEMATHESIS").is_ok_and(|v| v == "1") {
            panic!("SENSORCAST_REQUIRE_SCHEMATHESIS=1 but `st` (schemathesis) is missing: pip install schemathesis");
        }
        eprintln!(
            "\n*** SKIPPED: schema fuzzing — no schemathesis (pip install schemathesis) ***\n"
        );
        return;
    }
    // A gateway API, so commands are taken and their bodies checked (not refused 409).
    let gw = gateway_api::FakeGateway::start().await;
    let mut args = test_args();
    args.gateway_api_url = Some(gw.url());
    args.gateway_api_user = Some(gateway_api::GW_USER.into());
    args.gateway_api_password = Some(gateway_api::GW_PASSWORD.into());
    let app = spawn_or_skip!(backend, args);
    // A device with readings and an alarm, so paths and lists have data.
    let r = app
        .post_mdp(&mdp_reading(
            "fz-1",
            "fuzz-dev-1",
            "24e124707e0f0001",
            21.5,
            -18.0,
        ))
        .await;
    assert_eq!(r.status(), 200, "seed webhook");
    app.rule_at_most("fuzz-dev-1", 0.0).await;
    let r = app
        .post_mdp(&mdp_reading(
            "fz-2",
            "fuzz-dev-1",
            "24e124707e0f0001",
            22.5,
            -18.0,
        ))
        .await;
    assert_eq!(r.status(), 200, "seed webhook");
    let (client, cookie) = app.signed_in_cookie(ADMIN_EMAIL, PASSWORD).await;
    let csrf = app.page_csrf(&client).await;

    // Kept after the run (target/tmp), to look at what was sent and answered.
    let har_file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("schemathesis-{backend:?}.har").to_lowercase());
    let base = app.base();
    let args: Vec<String> = vec![
        "run".into(),
        format!("{base}/api/openapi.json"),
        "--checks".into(),
        "not_a_server_error,status_code_conformance,content_type_conformance,\
         response_headers_conformance,response_schema_conformance,unsupported_method,\
         ignored_auth,negative_data_rejection"
            .into(),
        "--exclude-path".into(),
        NOT_FUZZED.into(),
        "--max-examples".into(),
        MAX_EXAMPLES.into(),
        "--seed".into(),
        SEED.into(),
        // One thread: CPython's compile() is not thread safe here ("AST constructor recursion
        // depth mismatch" runtime errors with two workers).
        "--workers".into(),
        "1".into(),
        "--request-timeout".into(),
        "10".into(),
        "--generation-database".into(),
        "none".into(),
        "--no-color".into(),
        "--report".into(),
        "har".into(),
        "--report-har-path".into(),
        har_file.display().to_string(),
        "-H".into(),
        format!("Origin: {base}"),
    ];
    // The credentials go to the document's security schemes by name, so schemathesis knows
    // they are the auth (and `ignored_auth` can try each operation without them). It reads
    // schemathesis.toml in its working directory.
    let cwd = tempfile::tempdir().expect("work dir");
    let config = format!(
        "[auth.openapi.session]\napi_key = \"{cookie}\"\n\
         [auth.openapi.csrf]\napi_key = \"{csrf}\"\n\
         [auth.openapi.gateway_token]\napi_key = \"{TOKEN}\"\n"
    );
    std::fs::write(cwd.path().join("schemathesis.toml"), config).expect("config");
    let started = std::time::Instant::now();
    // Not in the repository: schemathesis also writes a cache (.schemathesis/) there.
    let cwd_path = cwd.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("st")
            .args(&args)
            .env("PYTHONHASHSEED", "0")
            .current_dir(cwd_path)
            .output()
    })
    .await
    .expect("join")
    .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!(
        "schemathesis on {backend:?} ({:.0?}):\n{stdout}\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems on {backend:?} (above)"
    );

    // Every body the fuzzer saw, for internal detail.
    let text = std::fs::read_to_string(&har_file).expect("HAR report");
    let har: serde_json::Value = serde_json::from_str(&text).expect("HAR");
    let entries = har["log"]["entries"].as_array().expect("HAR entries");
    assert!(entries.len() > 500, "only {} requests", entries.len());
    let mut statuses = std::collections::BTreeMap::<i64, usize>::new();
    for e in entries {
        let status = e["response"]["status"].as_i64().unwrap_or(0);
        *statuses.entry(status).or_default() += 1;
        let body = e["response"]["content"]["text"].as_str().unwrap_or("");
        // The audit trail names the address a sign-in came from: data, not a leak.
        let body = body.replace("\"target\":\"127.0.0.1\"", "");
        let what = format!(
            "{} {} → {status}",
            e["request"]["method"], e["request"]["url"]
        );
        assert_no_internal_detail(&body, &what);
    }
    eprintln!(
        "{} responses checked for internal detail; by status: {statuses:?}; HAR: {}",
        entries.len(),
        har_file.display()
    );
    // Signed in for real: most operations answered with data, not only refusals.
    let ok = statuses.range(200..300).map(|(_, n)| n).sum::<usize>();
    assert!(ok > entries.len() / 10, "few 2xx answers: {statuses:?}");
}

both_backends!(fuzz);

/// Refusals that answered outside the JSON error contract before (an HTML 413 from the
/// anti-forgery guard, a 400 for a body that is not JSON at all, an empty 405 on the webhook
/// paths): each is JSON now, with its own status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_bodies_and_methods_keep_the_json_error_contract() {
    let _turn = shared_turn().await;
    let app = spawn_or_skip!(Backend::Sqlite);
    let admin = app.admin().await;
    let csrf = app.page_csrf(&admin).await;
    let rules = app.url("/api/devices/nope/rules");
    let huge = format!(r#"{{"rules": [], "pad": "{}"}}"#, "x".repeat(200 * 1024));
    let r = admin
        .put(&rules)
        .header("x-csrf-token", &csrf)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("PUT");
    assert_json_error(r, 413, "payload_too_large", "an oversized /api body").await;
    let r = admin
        .put(&rules)
        .header("x-csrf-token", &csrf)
        .header("content-type", "text/plain")
        .body(r#"{"rules": []}"#)
        .send()
        .await
        .expect("PUT");
    assert_json_error(r, 415, "unsupported_media_type", "a text/plain /api body").await;
    for path in ["/api/webhooks/milesight", "/api/webhooks/milesight/gateway"] {
        let r = reqwest::Client::new()
            .delete(app.url(path))
            .send()
            .await
            .expect("DELETE");
        assert_json_error(r, 405, "method_not_allowed", path).await;
    }
}
