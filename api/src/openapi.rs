//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    change_requests, feed, gdpr, layers, namespaces, resolved, system, tenants, tokens, watch,
};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every read takes `min_position` (query) or `ECS-Min-Position` (header):
/// the middleware in [`crate::min_position`] serves them for all GET routes,
/// so they are documented here once rather than on each handler.
struct MinPosition;

impl Modify for MinPosition {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Required, Type};
        let position = || {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .build()
        };
        let description = "A stream position (a write's `position`) this server must have \
            applied before it answers: the read waits up to ECS_MIN_POSITION_WAIT_MS, then \
            answers 503 `behind` with Retry-After.";
        for item in openapi.paths.paths.values_mut() {
            let Some(get) = item.get.as_mut() else {
                continue;
            };
            let parameters = get.parameters.get_or_insert_with(Vec::new);
            parameters.push(
                ParameterBuilder::new()
                    .name(crate::min_position::PARAMETER)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(description))
                    .schema(Some(position()))
                    .build(),
            );
            parameters.push(
                ParameterBuilder::new()
                    .name(crate::min_position::HEADER)
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(description))
                    .schema(Some(position()))
                    .build(),
            );
        }
    }
}

/// Every operation of a path.
fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Error answers are `application/problem+json` (RFC 9457): handlers name
/// their body [`crate::routes::Problem`], and this files it under the media
/// type the server sends. OFREP's routes keep their own error shapes.
struct ProblemMediaType;

impl Modify for ProblemMediaType {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        for (path, item) in openapi.paths.paths.iter_mut() {
            // OFREP answers its errors in its own shapes, as its providers parse them.
            if path.starts_with("/ofrep/") {
                continue;
            }
            for operation in operations_mut(item) {
                for (status, response) in operation.responses.responses.iter_mut() {
                    let error = status.starts_with('4') || status.starts_with('5');
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    if error && let Some(body) = response.content.shift_remove("application/json") {
                        response
                            .content
                            .insert(crate::problem::PROBLEM_JSON.to_owned(), body);
                    }
                }
            }
        }
    }
}

/// The routes that take no bearer token: probes, Studio's sign-in
/// configuration, and the OFREP event stream (a signed ticket in its URL).
pub const OPEN_PATHS: [&str; 4] = [
    "/healthz",
    "/readyz",
    "/v1/auth/config",
    crate::routes::ofrep_events::EVENTS_PATH,
];

/// Marks [`OPEN_PATHS`] as needing no credential (an empty security
/// requirement overrides the document's bearer default).
struct OpenPaths;

impl Modify for OpenPaths {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityRequirement;
        for path in OPEN_PATHS {
            if let Some(item) = openapi.paths.paths.get_mut(path) {
                for operation in operations_mut(item) {
                    operation.security = Some(vec![SecurityRequirement::default()]);
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "ECS HTTP API", version = "1", description = "Configuration as a service: layered, versioned, validated, live."),
    paths(
        namespaces::put_namespace, namespaces::list_namespaces, namespaces::get_namespace,
        layers::get_layer, layers::put_layer, layers::patch_layer, layers::delete_layer,
        layers::layer_history, layers::rollback_layer,
        resolved::get_resolved, watch::watch_resolved,
        crate::routes::ofrep::evaluate_flag, crate::routes::ofrep::evaluate_flags,
        crate::routes::ofrep_events::events,
        crate::routes::rollouts::create, crate::routes::rollouts::list,
        crate::routes::rollouts::get, crate::routes::rollouts::pause,
        crate::routes::rollouts::resume, crate::routes::rollouts::cancel,
        feed::feed,
        tenants::put_tenant, tenants::list_tenants, tenants::get_tenant,
        change_requests::list, change_requests::show, change_requests::approve,
        change_requests::reject, change_requests::withdraw,
        gdpr::export, gdpr::erase,
        tokens::issue_token, tokens::list_tokens, tokens::revoke_token,
        crate::routes::audit::list_audit, crate::routes::audit::export_audit,
        system::healthz, system::readyz, system::metrics, openapi_json,
        system::projections_status, system::rebuild_projections, system::skip_message,
        crate::routes::whoami::whoami, crate::routes::auth_config::auth_config,
        crate::routes::locks::binding,
        crate::routes::search::search, crate::routes::timeline::tenant_history,
        crate::routes::drift::list, crate::routes::drift::report, crate::routes::usage::usage,
    ),
    modifiers(&BearerAuth, &MinPosition, &ProblemMediaType, &OpenPaths),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "system", responses((status = 200, description = "OpenAPI 3.1")))]
pub async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
