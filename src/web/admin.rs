//! The administrator's page: fleet figures, devices, placing new devices, users, webhook health
//! and the live event log; and the forms that change them.

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use tower_sessions::Session;

use super::auth::safe_next;
use super::auth::Admin;
use super::error::PageError;
use super::extract::PagePath;
// Re-exported: other pages' forms (notifications) take them from here.
pub use super::flash::{set_flash, take_flash, Flash};
use super::form::FormData;
use super::layout::{render, Layout};
use super::pages::{open_alarms, Fleet};
use super::password;
use super::state::AppState;
use super::view::{AlarmView, DeviceView, EventLine};
use crate::domain::{Role, Scope, User};
use crate::ingest::health::HealthSnapshot;
use crate::realtime::control;
use crate::store::{AccessChange, DeliveryRow, SiteRow, StoreError};

pub struct UserLine {
    pub id: i64,
    pub email: String,
    pub role: String,
    pub disabled: bool,
    pub site_ids: Vec<i64>,
    pub site_names: String,
    pub is_me: bool,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    layout: Layout,
    flash: Option<Flash>,
    fleet: Fleet,
    alarms: Vec<AlarmView>,
    unassigned: Vec<DeviceView>,
    clients: usize,
    sites: Vec<SiteRow>,
    users: Vec<UserLine>,
    events: Vec<EventLine>,
    health: HealthSnapshot,
    deliveries: Vec<DeliveryRow>,
    notices: Vec<DeliveryRow>,
    default_time_zone: String,
    /// This month so far, in the server's time zone (the sites' report links).
    report_from: String,
    report_to: String,
}

impl AdminPage {
    fn has_site(&self, u: &UserLine, site: &i64) -> bool {
        u.site_ids.contains(site)
    }
}

pub async fn page(
    State(state): State<AppState>,
    Admin(user): Admin,
    session: Session,
) -> Result<Response, PageError> {
    let last_event_id = state.hub.last_id();
    let store = &state.store;
    let fleet = Fleet::load(store, &Scope::All, false, user.unit).await?;
    let alarms = open_alarms(store, &Scope::All, user.unit).await?;
    let sites = store.sites().await?;
    let events = store.recent_events(&Scope::All, 30).await?;
    let deliveries = store.recent_deliveries(false, 8).await?;
    let notices = store.recent_deliveries(true, 8).await?;
    let users = user_lines(&state, &sites, user.id).await?;
    let (report_from, report_to) = super::reports::this_month(&state.settings.time_zone);
    let page = AdminPage {
        layout: Layout::signed_in(&user, &session, "Fleet")
            .await?
            .live(last_event_id),
        flash: take_flash(&session).await,
        unassigned: fleet
            .devices
            .iter()
            .filter(|d| d.site_id.is_none())
            .cloned()
            .collect(),
        fleet,
        alarms,
        clients: state.hub.stats.total_clients(),
        sites,
        users,
        events: events
            .iter()
            .filter_map(|e| EventLine::parse(e.id, &e.json, user.unit))
            .collect(),
        health: state.health.snapshot(),
        deliveries,
        notices,
        default_time_zone: state.settings.time_zone_name.clone(),
        report_from,
        report_to,
    };
    Ok(render(&page))
}

async fn user_lines(
    state: &AppState,
    sites: &[SiteRow],
    me: i64,
) -> Result<Vec<UserLine>, PageError> {
    let rows = state.store.users().await?;
    let links = state.store.user_sites().await?;
    let names: HashMap<i64, &str> = sites.iter().map(|s| (s.id, s.name.as_str())).collect();
    let mut by_user: HashMap<i64, Vec<i64>> = HashMap::new();
    for l in links {
        by_user.entry(l.user_id).or_default().push(l.site_id);
    }
    Ok(rows
        .into_iter()
        .map(|u| {
            let site_ids = by_user.remove(&u.id).unwrap_or_default();
            let site_names = site_ids
                .iter()
                .filter_map(|id| names.get(id).copied())
                .collect::<Vec<_>>()
                .join(", ");
            UserLine {
                is_me: u.id == me,
                id: u.id,
                email: u.email,
                role: u.role,
                disabled: u.disabled,
                site_ids,
                site_names,
            }
        })
        .collect())
}

/// Where a form returns to: its own `return` field when local, else the admin page.
fn back(form: &FormData, anchor: &str) -> Redirect {
    match form.get("return") {
        Some(r) if safe_next(Some(r)) != "/" => Redirect::to(r),
        _ => Redirect::to(&format!("/admin#{anchor}")),
    }
}

/// Sites ticked in a form plus a newly named one (created on first use).
async fn chosen_sites(state: &AppState, form: &FormData) -> Result<Vec<SiteRow>, PageError> {
    let ticked: Vec<i64> = form.all("site").filter_map(|s| s.parse().ok()).collect();
    let mut sites: Vec<SiteRow> = state
        .store
        .sites()
        .await?
        .into_iter()
        .filter(|s| ticked.contains(&s.id))
        .collect();
    if let Some(name) = form.text("new_site") {
        let name = clip(name, 80);
        let id = state.store.site_named(&name).await?;
        if !sites.iter().any(|s| s.id == id) {
            sites.push(SiteRow {
                id,
                name,
                time_zone: None,
            });
        }
    }
    Ok(sites)
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// `POST /admin/devices/{deviceId}/site`: place a device into a site (or take it out).
pub async fn assign_device(
    State(state): State<AppState>,
    Admin(user): Admin,
    session: Session,
    PagePath(device_id): PagePath<String>,
    Extension(form): Extension<FormData>,
) -> Result<Response, PageError> {
    let device = state
        .store
        .device(&device_id, &Scope::All)
        .await?
        .ok_or_else(PageError::not_found)?;
    let new_name = form.text("new_site").map(|n| clip(n, 80));
    let site_id: Option<i64> = form.text("site").and_then(|s| s.parse().ok());
    let message = match (new_name, site_id) {
        (Some(name), _) => {
            state
                .store
                .assign_device_to_site(&device_id, &name, &user.email)
                .await?;
            format!("{} is now in {name}.", device.name)
        }
        (None, Some(site_id)) => {
            let sites = state.store.sites().await?;
            let site = sites
                .into_iter()
                .find(|s| s.id == site_id)
                .ok_or_else(PageError::not_found)?;
            state
                .store
                .place_device(&device, Some((site.id, &site.name)), &user.email)
                .await?;
            format!("{} is now in {}.", device.name, site.name)
        }
        (None, None) if form.get("site") == Some("none") => {
            state.store.place_device(&device, None, &user.email).await?;
            format!("{} is no longer in a site.", device.name)
        }
        (None, None) => {
            set_flash(&session, false, "Choose a site or name a new one.").await;
            return Ok(back(&form, "unassigned").into_response());
        }
    };
    tracing::info!(admin = user.id, device = %device_id, "device placed");
    set_flash(&session, true, message).await;
    Ok(back(&form, "unassigned").into_response())
}

/// `POST /admin/users`: a new user with a role and sites.
pub async fn create_user(
    State(state): State<AppState>,
    Admin(user): Admin,
    session: Session,
    Extension(form): Extension<FormData>,
) -> Result<Response, PageError> {
    let email = form.text("email").unwrap_or("").to_ascii_lowercase();
    let password = form.get("password").unwrap_or("");
    let Some(role) = form.get("role").and_then(Role::parse) else {
        set_flash(&session, false, "Choose a role.").await;
        return Ok(back(&form, "users").into_response());
    };
    let names: Vec<String> = chosen_sites(&state, &form)
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    match super::accounts::create(&state.store, &email, password, role, &names, &user.email).await {
        Ok(id) => {
            tracing::info!(admin = user.id, user = id, "user created");
            set_flash(
                &session,
                true,
                format!("Created {email} ({}).", role.as_str()),
            )
            .await;
        }
        Err(StoreError::Invalid(why)) => set_flash(&session, false, capitalize(&why)).await,
        Err(StoreError::Conflict(_)) => {
            set_flash(&session, false, format!("{email} already has an account.")).await
        }
        Err(e) => return Err(e.into()),
    }
    Ok(back(&form, "users").into_response())
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `POST /admin/users/{id}`: role, sites and optionally a new password.
pub async fn update_user(
    State(state): State<AppState>,
    Admin(user): Admin,
    session: Session,
    PagePath(id): PagePath<i64>,
    Extension(form): Extension<FormData>,
) -> Result<Response, PageError> {
    let Some(role) = form.get("role").and_then(Role::parse) else {
        set_flash(&session, false, "Choose a role.").await;
        return Ok(back(&form, "users").into_response());
    };
    if id == user.id && role != Role::Admin {
        set_flash(
            &session,
            false,
            "You cannot take away your own admin role; ask another admin.",
        )
        .await;
        return Ok(back(&form, "users").into_response());
    }
    let target = state
        .store
        .account(id)
        .await?
        .ok_or_else(PageError::not_found)?;
    let password = form.get("password").unwrap_or("");
    let hash = if password.is_empty() {
        None
    } else if crate::domain::check_new_password(password).is_err() {
        set_flash(
            &session,
            false,
            "The new password needs at least 8 characters.",
        )
        .await;
        return Ok(back(&form, "users").into_response());
    } else {
        Some(
            password::hash(password.to_string())
                .await
                .map_err(PageError::internal)?,
        )
    };
    let site_ids: Vec<i64> = chosen_sites(&state, &form)
        .await?
        .iter()
        .map(|s| s.id)
        .collect();
    let before = state.store.account_with_sites(id).await?;
    let mut sorted = site_ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    // What the user may do or see changed, or how they prove who they are: their sessions end
    // with the change (all but this one, if it is the admin's own).
    let ends_sessions = hash.is_some()
        || before.is_none_or(|(row, sites)| row.role != role.as_str() || sites != sorted);
    let keep = (id == user.id)
        .then(|| session.id().map(|s| s.to_string()))
        .flatten();
    let change = AccessChange {
        role,
        site_ids: &sorted,
        password_hash: hash.as_deref(),
        end_sessions: ends_sessions,
        keep: keep.as_deref(),
        by: &user.email,
    };
    state.store.change_access(id, change).await?;
    if ends_sessions {
        // On every instance; the browser then signs in again with what it may now do.
        control::end_user(&state.store, &state.hub, id).await;
    }
    tracing::info!(admin = user.id, user = id, "user updated");
    set_flash(&session, true, format!("Saved {}.", target.email)).await;
    Ok(back(&form, "users").into_response())
}

/// `POST /admin/users/{id}/disable` and `/enable`.
pub async fn set_disabled(
    state: &AppState,
    admin: &User,
    session: &Session,
    id: i64,
    disabled: bool,
) -> Result<Response, PageError> {
    let (admin, by) = (admin.id, admin.email.as_str());
    if id == admin && disabled {
        set_flash(session, false, "You cannot disable your own account.").await;
        return Ok(Redirect::to("/admin#users").into_response());
    }
    let target = state
        .store
        .account(id)
        .await?
        .ok_or_else(PageError::not_found)?;
    state.store.set_disabled(id, disabled, by).await?;
    if disabled {
        control::end_user(&state.store, &state.hub, id).await;
    }
    tracing::info!(admin, user = id, disabled, "user access changed");
    let verb = if disabled { "Disabled" } else { "Enabled" };
    set_flash(session, true, format!("{verb} {}.", target.email)).await;
    Ok(Redirect::to("/admin#users").into_response())
}

pub async fn disable_user(
    State(state): State<AppState>,
    Admin(user): Admin,
    session: Session,
    PagePath(id): PagePath<i64>,
) -> Result<Response, PageError> {
    set_disabled(&state, &user, &session, id, true).await
}

pub async fn enable_user(
    State(state): State<AppState>,
    Admin(user): Admin,
    session: Session,
    PagePath(id): PagePath<i64>,
) -> Result<Response, PageError> {
    set_disabled(&state, &user, &session, id, false).await
}
