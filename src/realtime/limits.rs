//! Caps on open streams, per user and in total; a permit is held for a stream's lifetime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::hub::Hub;
use crate::domain::Role;

#[derive(Debug)]
pub struct StreamLimits {
    per_user: usize,
    total: usize,
    open: Mutex<(usize, HashMap<i64, usize>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitReached {
    User,
    Total,
}

/// Released on drop, however the stream ends.
#[derive(Debug)]
pub struct StreamPermit {
    limits: Arc<StreamLimits>,
    hub: Arc<Hub>,
    user_id: i64,
    role: Role,
}

impl StreamLimits {
    /// `0` means no cap.
    pub fn new(per_user: usize, total: usize) -> Arc<StreamLimits> {
        Arc::new(StreamLimits {
            per_user,
            total,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    pub fn acquire(
        self: &Arc<Self>,
        hub: &Arc<Hub>,
        user_id: i64,
        role: Role,
    ) -> Result<StreamPermit, LimitReached> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if self.total != 0 && open.0 >= self.total {
            return Err(LimitReached::Total);
        }
        let mine = open.1.get(&user_id).copied().unwrap_or(0);
        if self.per_user != 0 && mine >= self.per_user {
            return Err(LimitReached::User);
        }
        open.0 += 1;
        open.1.insert(user_id, mine + 1);
        hub.stats.role_slot(role).inc();
        Ok(StreamPermit {
            limits: self.clone(),
            hub: hub.clone(),
            user_id,
            role,
        })
    }

    pub fn open_streams(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.user_id) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.user_id);
            }
        }
        self.hub.stats.role_slot(self.role).dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_and_release() {
        let hub = Hub::new(16, 0);
        let limits = StreamLimits::new(2, 3);
        let a = limits.acquire(&hub, 1, Role::Admin).unwrap();
        let _b = limits.acquire(&hub, 1, Role::Admin).unwrap();
        assert_eq!(
            limits.acquire(&hub, 1, Role::Admin).unwrap_err(),
            LimitReached::User
        );
        let _c = limits.acquire(&hub, 2, Role::Employee).unwrap();
        assert_eq!(
            limits.acquire(&hub, 3, Role::Employee).unwrap_err(),
            LimitReached::Total
        );
        drop(a);
        let _d = limits.acquire(&hub, 1, Role::Admin).unwrap();
        assert_eq!(hub.stats.total_clients(), 3);
        assert_eq!(limits.open_streams(), 3);
    }
}
