//! The role dashboards (askama). Each shows only the devices the signed-in user may see.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::Session;

use super::auth::PageUser;
use super::error::PageError;
use super::flash::{take_flash, Flash};
use super::layout::{dashboard_path, render, Layout};
use super::state::AppState;
use super::view::{self, AlarmView, DeviceView, Stats, DAY_MS};
use crate::domain::{now_ms, Role, Scope, TemperatureUnit, User};
use crate::store::{AlarmFilter, SeriesPoint, Store};

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
    pub async fn load(
        store: &Store,
        scope: &Scope,
        with_chart: bool,
        unit: TemperatureUnit,
    ) -> Result<Fleet, PageError> {
        let now = now_ms();
        let rows = store.devices(scope).await?;
        let latest = store.latest_readings(scope, None).await?;
        let today = view::start_of_day_utc(now);
        let readings_today = store.count_readings_since(scope, today).await?;
        let ids: Vec<(i64, String)> = rows.iter().map(|d| (d.id, d.public_id())).collect();
        let devices = DeviceView::build(rows, latest, unit);
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

/// Most open alarms a dashboard lists.
pub const OPEN_ALARMS_MAX: i64 = 500;

/// The open alarms a user may see, as the dashboards list them (most severe, then oldest, first).
pub async fn open_alarms(
    store: &Store,
    scope: &Scope,
    unit: TemperatureUnit,
) -> Result<Vec<AlarmView>, PageError> {
    let filter = AlarmFilter {
        open_only: true,
        device_id: None,
        since_ms: i64::MIN,
        until_ms: i64::MAX,
        limit: OPEN_ALARMS_MAX,
    };
    let rows = store.alarms(scope, &filter).await?;
    Ok(AlarmView::open_list(&rows, unit))
}

/// What the manager and employee dashboards show: the sites of the reader, live.
struct SiteDashboard {
    layout: Layout,
    flash: Option<Flash>,
    fleet: Fleet,
    alarms: Vec<AlarmView>,
    reports: Vec<super::reports::ReportLink>,
}

impl SiteDashboard {
    async fn load(
        state: &AppState,
        user: &User,
        session: &Session,
        title: &str,
    ) -> Result<SiteDashboard, PageError> {
        // The id before the rows: the stream then replays anything stored meanwhile.
        let last_event_id = state.hub.last_id();
        let scope = user.scope();
        Ok(SiteDashboard {
            layout: Layout::signed_in(user, session, title)
                .await?
                .live(last_event_id),
            flash: take_flash(session).await,
            fleet: Fleet::load(&state.store, &scope, true, user.unit).await?,
            alarms: open_alarms(&state.store, &scope, user.unit).await?,
            reports: super::reports::report_links(state, user).await?,
        })
    }
}

#[derive(Template)]
#[template(path = "manager.html")]
struct ManagerPage {
    page: SiteDashboard,
}

#[derive(Template)]
#[template(path = "employee.html")]
struct EmployeePage {
    page: SiteDashboard,
}

// The templates name the dashboard's fields (`layout`, `fleet`, …) directly: field access
// goes through `Deref`.
impl std::ops::Deref for ManagerPage {
    type Target = SiteDashboard;
    fn deref(&self) -> &SiteDashboard {
        &self.page
    }
}

impl std::ops::Deref for EmployeePage {
    type Target = SiteDashboard;
    fn deref(&self) -> &SiteDashboard {
        &self.page
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
    let page = SiteDashboard::load(&state, &user, &session, "My sites").await?;
    Ok(render(&ManagerPage { page }))
}

pub async fn employee(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    session: Session,
) -> Result<Response, PageError> {
    if let Some(r) = own_dashboard(&user, Role::Employee) {
        return Ok(r);
    }
    let page = SiteDashboard::load(&state, &user, &session, "Devices").await?;
    Ok(render(&EmployeePage { page }))
}
