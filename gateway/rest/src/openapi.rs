//! The OpenAPI 3.1 document of the API, generated from the handlers' `#[utoipa::path]`
//! attributes and the DTOs' schemas, and served at `/api/v1/openapi.json`.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::routes::{
    api_keys, auth, calls, campaigns, dashboard, dialler, dnc, events, jobs, ledger, nodes, numbers, regions, storage,
    users, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vox console API",
        description = "The console REST API that voxgate serves under /api/v1, translated to the voxbridge \
            control plane. Sign in with POST /api/v1/auth/login and send `Authorization: Bearer <access_token>`. \
            Every failure answers `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(
        document,
        auth::login, auth::me,
        users::list, users::create, users::update, users::delete,
        api_keys::list, api_keys::create, api_keys::revoke,
        regions::list, regions::create, regions::get, regions::update, regions::delete, regions::set_storage,
        storage::test, storage::recording_url, storage::play,
        nodes::list, nodes::register, nodes::get, nodes::update, nodes::delete, nodes::rotate_secret,
        nodes::lifecycle, nodes::audit,
        campaigns::list, campaigns::create, campaigns::get, campaigns::replace, campaigns::start,
        campaigns::pause, campaigns::complete, numbers::add,
        ledger::get, ledger::report,
        dnc::list, dnc::add, dnc::remove,
        calls::list, calls::get, calls::events, calls::cancel,
        dashboard::get, dashboard::stream,
        events::list, events::stream,
        webhooks::list, webhooks::create, webhooks::update, webhooks::delete, webhooks::rotate_secret,
        webhooks::deliveries, webhooks::dead_letters, webhooks::requeue, webhooks::queue,
        jobs::cleanup,
        dialler::status,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "auth", description = "sign-in"),
        (name = "users", description = "users and roles (admin)"),
        (name = "api-keys", description = "integrations' API keys (admin)"),
        (name = "regions", description = "regions and their object storage"),
        (name = "nodes", description = "nodes, their lifecycle and the audit log"),
        (name = "campaigns", description = "outbound campaigns and their numbers"),
        (name = "do-not-call", description = "numbers never to call: the global list and each campaign's"),
        (name = "calls", description = "calls and their timelines"),
        (name = "dashboard", description = "the cluster at a glance"),
        (name = "events", description = "the activity feed for integrations: pages, or live over a WebSocket with commands"),
        (name = "webhooks", description = "outgoing webhooks (admin): endpoints, signing secrets, deliveries, dead letters and their queue"),
        (name = "jobs", description = "background jobs"),
        (name = "dialler", description = "the outbound dialler's live pacing figures"),
        (name = "meta", description = "this document"),
    )
)]
pub struct ApiDoc;

/// The access token every route but sign-in needs.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")));

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "openapi_document", tag = "meta", security(()),
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object, content_type = "application/json")))]
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}
