//! Notifications on the pages: each user's email opt-in (`/settings`), and for admins the
//! outbox with every notification's channel, recipient, attempts and last result, the sites'
//! outgoing webhooks, and "send a test" per channel (`/admin/notifications`).

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use tower_sessions::Session;

use super::admin::{set_flash, take_flash, Flash};
use super::auth::{Admin, PageUser};
use super::error::PageError;
use super::extract::PagePath;
use super::form::FormData;
use super::layout::{render, Layout};
use super::state::AppState;
use crate::domain::{self as domain, NotificationRow, TemperatureUnit, WebhookEndpoint};
use crate::store::{SiteRow, StoreError};

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    layout: Layout,
    flash: Option<Flash>,
    email_alerts: bool,
    email: String,
    unit: TemperatureUnit,
}

impl SettingsPage {
    fn is_unit(&self, code: &str) -> bool {
        self.unit.code() == code
    }
}

pub async fn settings(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    session: Session,
) -> Result<Response, PageError> {
    let email_alerts = state.store.email_alerts(user.id, user.role).await?;
    Ok(render(&SettingsPage {
        layout: Layout::signed_in(&user, &session, "Settings").await?,
        flash: take_flash(&session).await,
        email_alerts,
        email: user.email.clone(),
        unit: user.unit,
    }))
}

pub async fn save_settings(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    session: Session,
    Extension(form): Extension<FormData>,
) -> Result<Response, PageError> {
    let unit = match form.text("unit") {
        None => user.unit,
        Some(code) => match TemperatureUnit::parse(code) {
            Some(unit) => unit,
            None => {
                set_flash(&session, false, "Not saved: choose °C or °F.").await;
                return Ok(Redirect::to("/settings").into_response());
            }
        },
    };
    let on = form.get("email_alerts") == Some("on");
    state.store.set_email_alerts(user.id, on).await?;
    if unit != user.unit {
        state.store.set_temperature_unit(user.id, unit).await?;
    }
    let emails = if on { "on" } else { "off" };
    let text = format!(
        "Saved: alarm emails are {emails}; temperatures in {}.",
        unit.symbol()
    );
    set_flash(&session, true, text).await;
    Ok(Redirect::to("/settings").into_response())
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    layout: Layout,
    flash: Option<Flash>,
    endpoints: Vec<WebhookEndpoint>,
    sites: Vec<SiteRow>,
    notifications: Vec<NotificationRow>,
    smtp: bool,
    max_per_hour: u64,
}

pub async fn page(
    State(state): State<AppState>,
    Admin(user): Admin,
    session: Session,
) -> Result<Response, PageError> {
    Ok(render(&NotificationsPage {
        layout: Layout::signed_in(&user, &session, "Notifications").await?,
        flash: take_flash(&session).await,
        endpoints: state.store.webhook_endpoints().await?,
        sites: state.store.sites().await?,
        notifications: state.store.notifications(200).await?,
        smtp: state.settings.smtp_configured,
        max_per_hour: state.settings.notify_max_per_hour,
    }))
}

fn back() -> Response {
    Redirect::to("/admin/notifications").into_response()
}

pub async fn add_webhook(
    State(state): State<AppState>,
    Admin(user): Admin,
    session: Session,
    Extension(form): Extension<FormData>,
) -> Result<Response, PageError> {
    let site = form.text("site").unwrap_or("");
    let url = form.text("url").unwrap_or("");
    let secret = form.get("secret").unwrap_or("");
    match state
        .store
        .add_webhook_endpoint(site, url, secret, &user.email)
        .await
    {
        Ok(_) => set_flash(&session, true, format!("Webhook added for {site}.")).await,
        Err(StoreError::Invalid(why)) => {
            set_flash(&session, false, format!("Not added: {why}.")).await
        }
        Err(e) => return Err(e.into()),
    }
    Ok(back())
}

pub async fn remove_webhook(
    State(state): State<AppState>,
    Admin(user): Admin,
    session: Session,
    PagePath(id): PagePath<i64>,
) -> Result<Response, PageError> {
    if state.store.remove_webhook_endpoint(id, &user.email).await? {
        set_flash(&session, true, "Webhook removed.").await;
    }
    Ok(back())
}

/// `POST /admin/notifications/test`: one test notification through a channel, from the outbox
/// like any other (so its attempts show in the list).
pub async fn send_test(
    State(state): State<AppState>,
    Admin(user): Admin,
    session: Session,
    Extension(form): Extension<FormData>,
) -> Result<Response, PageError> {
    let payload = serde_json::json!({
        "type": "test",
        "timestamp": domain::now_ms(),
        "message": format!("a test sent by {}", user.email),
    })
    .to_string();
    let queued = match form.get("channel") {
        Some(domain::EMAIL) => {
            state
                .store
                .enqueue_test(domain::EMAIL, &user.email, None, &payload)
                .await?;
            format!("A test email to {} is on its way.", user.email)
        }
        Some(domain::WEBHOOK) => {
            let id: Option<i64> = form.text("endpoint").and_then(|v| v.parse().ok());
            let endpoints = state.store.webhook_endpoints().await?;
            let Some(e) = endpoints.iter().find(|e| Some(e.id) == id) else {
                set_flash(&session, false, "Choose a webhook.").await;
                return Ok(back());
            };
            state
                .store
                .enqueue_test(domain::WEBHOOK, &e.url, Some(e.id), &payload)
                .await?;
            format!("A test post to {} is on its way.", e.url)
        }
        _ => {
            set_flash(&session, false, "Choose a channel.").await;
            return Ok(back());
        }
    };
    set_flash(&session, true, queued).await;
    Ok(back())
}
