//! Server-rendered pages (askama). Each role's dashboard shows only what that user may see.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::auth::PageUser;
use super::error::ApiError;
use crate::state::AppState;
use crate::store::{dispatch, DeviceRow, Role, User};

pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

pub async fn home(PageUser(user): PageUser) -> Redirect {
    Redirect::to(dashboard_path(user.role))
}

pub fn dashboard_path(role: Role) -> &'static str {
    match role {
        Role::Admin => "/admin",
        Role::Manager => "/manager",
        Role::Employee => "/employee",
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard<'a> {
    user: &'a User,
    title: &'a str,
    devices: Vec<DeviceRow>,
    last_event_id: i64,
}

async fn dashboard(state: &AppState, user: &User, role: Role, title: &str) -> Response {
    if user.role != role {
        return (
            StatusCode::FORBIDDEN,
            Redirect::to(dashboard_path(user.role)),
        )
            .into_response();
    }
    // Read the last id before the rows: the page then replays anything newer on connect.
    let last_event_id = state.hub.last_id();
    let scope = user.scope();
    match dispatch!(&state.db, |pool, q| q::list_devices(pool, &scope).await) {
        Ok(devices) => render(&Dashboard {
            user,
            title,
            devices,
            last_event_id,
        }),
        Err(e) => ApiError::from(e).into_response(),
    }
}

pub async fn admin(State(state): State<AppState>, PageUser(user): PageUser) -> Response {
    dashboard(&state, &user, Role::Admin, "Fleet").await
}

pub async fn manager(State(state): State<AppState>, PageUser(user): PageUser) -> Response {
    dashboard(&state, &user, Role::Manager, "My sites").await
}

pub async fn employee(State(state): State<AppState>, PageUser(user): PageUser) -> Response {
    dashboard(&state, &user, Role::Employee, "Devices").await
}
