//! The handlers, one file per resource, and the table that mounts them under `/api/v1`.

pub mod api_keys;
pub mod auth;
pub mod calls;
pub mod campaigns;
pub mod dashboard;
pub mod dialler;
pub mod dnc;
pub mod events;
pub mod jobs;
pub mod ledger;
pub mod nodes;
pub mod numbers;
pub mod regions;
pub mod storage;
pub mod users;
pub mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::{MethodRouter, get, patch, post, put};

use crate::bridge::Bridge;
use crate::error::ApiError;
use crate::{JSON_BODY_LIMIT, UPLOAD_BODY_LIMIT, openapi};

/// A wrong method on a known path answers the JSON error shape too.
fn route(methods: MethodRouter<Bridge>) -> MethodRouter<Bridge> {
    methods.fallback(|method: Method, uri: Uri| async move { ApiError::method_not_allowed(&method, uri.path()) })
}

/// Every route of the API. The body limit applies to all of them but the numbers upload,
/// whose own limit, set closer to its handler, wins.
pub fn routes() -> Router<Bridge> {
    Router::new()
        .route("/api/v1/openapi.json", route(get(openapi::document)))
        .route("/api/v1/auth/login", route(post(auth::login)))
        .route("/api/v1/auth/me", route(get(auth::me)))
        .route("/api/v1/users", route(get(users::list).post(users::create)))
        .route("/api/v1/users/{id}", route(patch(users::update).delete(users::delete)))
        .route("/api/v1/api-keys", route(get(api_keys::list).post(api_keys::create)))
        .route("/api/v1/api-keys/{id}/revoke", route(post(api_keys::revoke)))
        .route("/api/v1/regions", route(get(regions::list).post(regions::create)))
        .route("/api/v1/regions/{id}", route(get(regions::get).patch(regions::update).delete(regions::delete)))
        .route("/api/v1/regions/{id}/storage", route(put(regions::set_storage)))
        .route("/api/v1/regions/{id}/storage/test", route(post(storage::test)))
        .route("/api/v1/calls/{id}/recording", route(get(storage::recording_url)))
        .route("/api/v1/recordings/{*key}", route(get(storage::play)))
        .route("/api/v1/nodes", route(get(nodes::list).post(nodes::register)))
        .route("/api/v1/nodes/{id}", route(get(nodes::get).patch(nodes::update).delete(nodes::delete)))
        .route("/api/v1/nodes/{id}/rotate-secret", route(post(nodes::rotate_secret)))
        .route("/api/v1/nodes/{id}/lifecycle", route(post(nodes::lifecycle)))
        .route("/api/v1/audit", route(get(nodes::audit)))
        .route("/api/v1/campaigns", route(get(campaigns::list).post(campaigns::create)))
        .route("/api/v1/campaigns/{id}", route(get(campaigns::get).put(campaigns::replace)))
        .route("/api/v1/campaigns/{id}/start", route(post(campaigns::start)))
        .route("/api/v1/campaigns/{id}/pause", route(post(campaigns::pause)))
        .route("/api/v1/campaigns/{id}/complete", route(post(campaigns::complete)))
        .route(
            "/api/v1/campaigns/{id}/numbers",
            route(post(numbers::add).layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT))),
        )
        .route("/api/v1/campaigns/{id}/ledger", route(get(ledger::get)))
        .route("/api/v1/campaigns/{id}/compliance.csv", route(get(ledger::report)))
        .route(
            "/api/v1/do-not-call",
            route(get(dnc::list).post(dnc::add).layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT))),
        )
        .route("/api/v1/do-not-call/remove", route(post(dnc::remove)))
        .route("/api/v1/calls", route(get(calls::list)))
        .route("/api/v1/calls/{id}", route(get(calls::get)))
        .route("/api/v1/calls/{id}/events", route(get(calls::events)))
        .route("/api/v1/calls/{id}/cancel", route(post(calls::cancel)))
        .route("/api/v1/dashboard", route(get(dashboard::get)))
        .route("/api/v1/dashboard/stream", route(get(dashboard::stream)))
        .route("/api/v1/events", route(get(events::list)))
        .route("/api/v1/events/stream", route(get(events::stream)))
        .route("/api/v1/webhooks", route(get(webhooks::list).post(webhooks::create)))
        .route("/api/v1/webhooks/queue", route(get(webhooks::queue)))
        .route("/api/v1/webhooks/dead-letters", route(get(webhooks::dead_letters)))
        .route("/api/v1/webhooks/dead-letters/requeue", route(post(webhooks::requeue)))
        .route("/api/v1/webhooks/{id}", route(patch(webhooks::update).delete(webhooks::delete)))
        .route("/api/v1/webhooks/{id}/rotate-secret", route(post(webhooks::rotate_secret)))
        .route("/api/v1/webhooks/{id}/deliveries", route(get(webhooks::deliveries)))
        .route("/api/v1/jobs/cleanup", route(post(jobs::cleanup)))
        .route("/api/v1/dialler", route(get(dialler::status)))
        // Not a fallback: voxgate merges this router into its own, which has its own.
        .route("/api/v1/{*rest}", any_unknown())
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
}

fn any_unknown() -> MethodRouter<Bridge> {
    axum::routing::any(|method: Method, uri: Uri| async move {
        ApiError::new(
            vox_domain::ErrorCode::NotFound,
            format!("no route {method} {}; see /api/v1/openapi.json", uri.path()),
        )
    })
}
