//! Users, sites and device placement: used by the CLI, start-up and (later) the admin pages.

use super::{dispatch, Db, Role, Scope, StoreError, StoreResult};
use crate::web::password;

/// Creates a user with an argon2 hash of `password`, in the named sites (created on first use).
pub async fn create_user(
    db: &Db,
    email: &str,
    pw: &str,
    role: Role,
    sites: &[String],
) -> StoreResult<i64> {
    let email = email.trim().to_ascii_lowercase();
    if !email.contains('@') {
        return Err(StoreError::Invalid(format!(
            "{email:?} is not an email address"
        )));
    }
    if pw.chars().count() < 8 {
        return Err(StoreError::Invalid(
            "the password needs at least 8 characters".into(),
        ));
    }
    let hash = password::hash(pw.to_string())
        .await
        .map_err(StoreError::Invalid)?;
    let now = crate::now_ms();
    let id = dispatch!(db, |pool, q| {
        let mut tx = q::begin(pool).await?;
        let id = q::insert_user(&mut tx, &email, &hash, role.as_str(), now).await?;
        for site in sites {
            let site_id = q::site_get_or_create(&mut tx, site.trim(), now).await?;
            q::add_user_site(&mut tx, id, site_id).await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(id)
    })?;
    Ok(id)
}

/// A device by Milesight id or devEUI, or an error naming it.
async fn existing_device(db: &Db, public_id: &str) -> StoreResult<super::DeviceRow> {
    let found = dispatch!(db, |pool, q| q::device_by_public_id(
        pool,
        public_id,
        &Scope::All
    )
    .await)?;
    found.ok_or_else(|| StoreError::Invalid(format!("no device {public_id:?}")))
}

/// Puts a device (Milesight id or devEUI) into a site, creating the site on first use.
pub async fn assign_device(db: &Db, device: &str, site: &str) -> StoreResult<()> {
    let now = crate::now_ms();
    let device = existing_device(db, device).await?;
    dispatch!(db, |pool, q| {
        let mut tx = q::begin(pool).await?;
        let site_id = q::site_get_or_create(&mut tx, site.trim(), now).await?;
        q::assign_device(&mut tx, device.id, Some(site_id)).await?;
        tx.commit().await
    })?;
    Ok(())
}

/// Sets (or with `None` clears) the TS302 variant of a device.
pub async fn set_device_variant(db: &Db, device: &str, variant: Option<&str>) -> StoreResult<()> {
    let device = existing_device(db, device).await?;
    dispatch!(db, |pool, q| q::set_device_variant(
        pool, device.id, variant
    )
    .await)?;
    Ok(())
}

/// Rows in one of the data tables (for operators and tests).
pub async fn count_rows(db: &Db, table: Table) -> StoreResult<i64> {
    let table = table.name();
    Ok(dispatch!(db, |pool, q| q::count_rows(pool, table).await)?)
}

#[derive(Debug, Clone, Copy)]
pub enum Table {
    Devices,
    Readings,
    Events,
    Deliveries,
    Users,
    Sessions,
    LoginAttempts,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Devices => "devices",
            Table::Readings => "readings",
            Table::Events => "events",
            Table::Deliveries => "deliveries",
            Table::Users => "users",
            Table::Sessions => "sessions",
            Table::LoginAttempts => "login_attempts",
        }
    }
}
