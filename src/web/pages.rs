//! The role dashboards (askama). Each shows only the devices the signed-in user may see.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::Session;

use super::auth::PageUser;
use super::error::PageError;
use super::layout::{dashboard_path, render, Layout};
use super::state::AppState;
use super::view::{self, DeviceView, Stats, DAY_MS};
use crate::domain::{now_ms, public_device_id, Role, Scope, User};
use crate::store::{AlarmReadingRow, SeriesPoint, Store};

pub async fn home(PageUser(user): PageUser) -> Redirect {
    Redirect::to(dashboard_path(user.role))
}

/// The devices a user may see with their newest values, fleet figures and 24 h chart series.
pub struct Fleet {
    pub devices: Vec<DeviceView>,
    pub stats: Stats,
    pub chart_json: String,
}

impl Fleet {
    pub async fn load(store: &Store, scope: &Scope, with_chart: bool) -> Result<Fleet, PageError> {
        let now = now_ms();
        let rows = store.devices(scope).await?;
        let latest = store.latest_readings(scope, None).await?;
        let today = view::start_of_day_utc(now);
        let readings_today = store.count_readings_since(scope, today).await?;
        let ids: Vec<(i64, String)> = rows.iter().map(|d| (d.id, d.public_id())).collect();
        let devices = DeviceView::build(rows, latest);
        let chart_json = if with_chart && !devices.is_empty() {
            let points = chart_points(store, scope, None, devices.len(), DAY_MS).await?;
            view::chart_json(&devices, &ids, points)
        } else {
            "{}".into()
        };
        Ok(Fleet {
            stats: Stats::of(&devices, readings_today),
            devices,
            chart_json,
        })
    }
}

/// Chart points of the last `span_ms`: every reading when there are few, else averages.
pub async fn chart_points(
    store: &Store,
    scope: &Scope,
    device: Option<i64>,
    devices: usize,
    span_ms: i64,
) -> Result<Vec<SeriesPoint>, PageError> {
    let now = now_ms();
    let range = (now - span_ms, now);
    let count = store.count_measured(scope, device, range).await?;
    let bucket = view::bucket_for(span_ms, count, devices);
    Ok(store.series(scope, device, range, bucket).await?)
}

/// A manager or employee page asked for by someone else: each goes to their own dashboard.
fn own_dashboard(user: &User, role: Role) -> Option<Response> {
    (user.role != role).then(|| Redirect::to(dashboard_path(user.role)).into_response())
}

#[derive(Template)]
#[template(path = "manager.html")]
struct ManagerPage {
    layout: Layout,
    fleet: Fleet,
    alarms: Vec<AlarmLine>,
}

pub struct AlarmLine {
    pub device_id: String,
    pub device_name: String,
    pub at_ms: i64,
    pub text: String,
    pub values: String,
}

impl AlarmLine {
    /// An empty line, for the `<template>` of live alarms.
    pub fn blank() -> AlarmLine {
        AlarmLine {
            device_id: String::new(),
            device_name: String::new(),
            at_ms: 0,
            text: String::new(),
            values: String::new(),
        }
    }
}

impl From<AlarmReadingRow> for AlarmLine {
    fn from(a: AlarmReadingRow) -> Self {
        AlarmLine {
            device_id: public_device_id(a.milesight_id.as_deref(), a.dev_eui.as_deref()),
            device_name: a.device_name,
            at_ms: a.measured_ms,
            text: view::describe_alarms(&a.alarms),
            values: format!(
                "{} / {}",
                view::temp(a.temperature),
                view::temp(a.temperature2)
            ),
        }
    }
}

pub async fn manager(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    session: Session,
) -> Result<Response, PageError> {
    if let Some(r) = own_dashboard(&user, Role::Manager) {
        return Ok(r);
    }
    // The id before the rows: the stream then replays anything stored meanwhile.
    let last_event_id = state.hub.last_id();
    let scope = user.scope();
    let fleet = Fleet::load(&state.store, &scope, true).await?;
    let since = now_ms() - 7 * DAY_MS;
    let alarms = state.store.recent_alarms(&scope, since, 20).await?;
    let page = ManagerPage {
        layout: Layout::signed_in(&user, &session, "My sites")
            .await?
            .live(last_event_id),
        fleet,
        alarms: alarms.into_iter().map(AlarmLine::from).collect(),
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "employee.html")]
struct EmployeePage {
    layout: Layout,
    fleet: Fleet,
}

pub async fn employee(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    session: Session,
) -> Result<Response, PageError> {
    if let Some(r) = own_dashboard(&user, Role::Employee) {
        return Ok(r);
    }
    let last_event_id = state.hub.last_id();
    let fleet = Fleet::load(&state.store, &user.scope(), true).await?;
    let page = EmployeePage {
        layout: Layout::signed_in(&user, &session, "Devices")
            .await?
            .live(last_event_id),
        fleet,
    };
    Ok(render(&page))
}
