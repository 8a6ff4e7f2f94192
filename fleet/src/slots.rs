//! The worker's call slots: reservations with a TTL, the calls they turn into, and the
//! drain flag. All checks happen under one lock, before any side effect, so a busy
//! worker answers RESOURCE_EXHAUSTED and a draining one UNAVAILABLE without having
//! touched anything.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::Status;
use vox_domain::ids;
use vox_proto::common::v1::WorkerState;
use vox_proto::fleet::v1 as pb;

#[derive(Debug, Clone)]
pub struct Reservation {
    pub id: String,
    pub call_id: String,
    pub expires_at: Instant,
    pub request: pb::ReserveRequest,
}

#[derive(Debug, Default)]
struct Inner {
    draining: bool,
    exit_when_idle: bool,
    reservations: HashMap<String, Reservation>,
    /// call id → when it started
    calls: HashMap<String, Instant>,
}

#[derive(Debug)]
pub struct Slots {
    max: u32,
    inner: Mutex<Inner>,
    idle: tokio::sync::Notify,
}

impl Slots {
    pub fn new(max: u32) -> Self {
        Slots { max: max.max(1), inner: Mutex::new(Inner::default()), idle: tokio::sync::Notify::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims a slot for `req.call_id` until `ttl`.
    pub fn reserve(&self, req: pb::ReserveRequest, ttl: Duration) -> Result<Reservation, Status> {
        let mut g = self.lock();
        if g.draining {
            return Err(Status::unavailable("this worker is draining and takes no new calls"));
        }
        let now = Instant::now();
        g.reservations.retain(|_, r| r.expires_at > now);
        if g.reservations.values().any(|r| r.call_id == req.call_id) || g.calls.contains_key(&req.call_id) {
            return Err(Status::already_exists(format!("call {} already holds a slot on this worker", req.call_id)));
        }
        if (g.reservations.len() + g.calls.len()) as u32 >= self.max {
            return Err(Status::resource_exhausted("no free slot on this worker; try the next one"));
        }
        let r = Reservation {
            id: format!("rsv_{}", ids::random_token(16)),
            call_id: req.call_id.clone(),
            expires_at: now + ttl,
            request: req,
        };
        g.reservations.insert(r.id.clone(), r.clone());
        Ok(r)
    }

    /// Turns a live reservation into a call.
    pub fn start_call(&self, reservation_id: &str, call_id: &str) -> Result<Reservation, Status> {
        let mut g = self.lock();
        let Some(r) = g.reservations.remove(reservation_id) else {
            return Err(Status::failed_precondition(format!(
                "reservation {reservation_id:?} is unknown or was released"
            )));
        };
        if r.expires_at <= Instant::now() {
            self.notify_if_idle(&g);
            return Err(Status::failed_precondition(format!(
                "reservation {reservation_id} expired before its media started"
            )));
        }
        if r.call_id != call_id {
            g.reservations.insert(r.id.clone(), r.clone());
            return Err(Status::failed_precondition(format!(
                "reservation {reservation_id} is for call {}, not {call_id}",
                r.call_id
            )));
        }
        g.calls.insert(call_id.to_string(), Instant::now());
        Ok(r)
    }

    pub fn release(&self, reservation_id: &str) -> bool {
        let mut g = self.lock();
        let found = g.reservations.remove(reservation_id).is_some();
        self.notify_if_idle(&g);
        found
    }

    pub fn end_call(&self, call_id: &str) {
        let mut g = self.lock();
        g.calls.remove(call_id);
        self.notify_if_idle(&g);
    }

    /// Drops reservations whose TTL passed without a media stream; returns them.
    pub fn expire(&self) -> Vec<Reservation> {
        let mut g = self.lock();
        let now = Instant::now();
        let expired: Vec<Reservation> = g.reservations.values().filter(|r| r.expires_at <= now).cloned().collect();
        for r in &expired {
            g.reservations.remove(&r.id);
        }
        if !expired.is_empty() {
            self.notify_if_idle(&g);
        }
        expired
    }

    pub fn drain(&self, exit_when_idle: bool) {
        let mut g = self.lock();
        g.draining = true;
        g.exit_when_idle |= exit_when_idle;
        self.notify_if_idle(&g);
    }

    pub fn resume(&self) -> Result<(), Status> {
        let mut g = self.lock();
        if g.exit_when_idle {
            return Err(Status::failed_precondition("this worker is shutting down; it exits once idle"));
        }
        g.draining = false;
        Ok(())
    }

    fn notify_if_idle(&self, g: &Inner) {
        if g.reservations.is_empty() && g.calls.is_empty() {
            self.idle.notify_waiters();
        }
    }

    /// Resolves once the worker is draining to exit and holds nothing.
    pub async fn exit_requested_and_idle(&self) {
        loop {
            let notified = self.idle.notified();
            {
                let g = self.lock();
                if g.exit_when_idle && g.reservations.is_empty() && g.calls.is_empty() {
                    return;
                }
            }
            notified.await;
        }
    }

    pub fn status(&self, index: u32) -> pb::WorkerStatus {
        let g = self.lock();
        let state = if g.draining {
            WorkerState::Draining
        } else if !g.calls.is_empty() {
            WorkerState::InCall
        } else if !g.reservations.is_empty() {
            WorkerState::Reserved
        } else {
            WorkerState::Idle
        };
        let call_id = g.calls.keys().next().or_else(|| g.reservations.values().next().map(|r| &r.call_id)).cloned();
        pb::WorkerStatus {
            worker_calls: g.calls.len() as u32,
            worker_max: self.max,
            state: state as i32,
            call_id: call_id.unwrap_or_default(),
            worker_index: index,
            version: vox_telemetry::build::FULL_VERSION.into(),
            counters: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn req(call: &str) -> pb::ReserveRequest {
        pb::ReserveRequest { call_id: call.into(), ..Default::default() }
    }

    #[test]
    fn one_slot_one_call() {
        let s = Slots::new(1);
        let r = s.reserve(req("a"), Duration::from_secs(5)).unwrap();
        assert_eq!(s.reserve(req("b"), Duration::from_secs(5)).unwrap_err().code(), tonic::Code::ResourceExhausted);
        s.start_call(&r.id, "a").unwrap();
        assert_eq!(s.status(1).worker_calls, 1);
        assert_eq!(s.reserve(req("b"), Duration::from_secs(5)).unwrap_err().code(), tonic::Code::ResourceExhausted);
        s.end_call("a");
        assert!(s.reserve(req("b"), Duration::from_secs(5)).is_ok());
    }

    #[test]
    fn draining_refuses_and_resume_reopens() {
        let s = Slots::new(1);
        s.drain(false);
        assert_eq!(s.reserve(req("a"), Duration::from_secs(5)).unwrap_err().code(), tonic::Code::Unavailable);
        assert_eq!(s.status(1).state, WorkerState::Draining as i32);
        s.resume().unwrap();
        assert!(s.reserve(req("a"), Duration::from_secs(5)).is_ok());
        s.drain(true);
        assert!(s.resume().is_err(), "a worker shutting down stays down");
    }

    #[test]
    fn unused_reservations_expire() {
        let s = Slots::new(1);
        let r = s.reserve(req("a"), Duration::from_millis(0)).unwrap();
        assert_eq!(s.expire().len(), 1);
        assert!(s.start_call(&r.id, "a").is_err());
        assert!(s.reserve(req("b"), Duration::from_secs(5)).is_ok());
    }
}
