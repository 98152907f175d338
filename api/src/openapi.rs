//! The OpenAPI 3.1 document of `/api/v1`'s reads, generated from the handlers' annotations
//! (utoipa) and served at `/api/openapi.json`; `docs/openapi.json` is the committed copy a
//! test compares with it.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::routes::v1::{
    admin, alerts, dashboards, deployments, devices, organization, sessions, teams, users,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "DevPulse API",
        description = "Precomputed engineering metrics for dashboards. Sign in at \
            `POST /api/v1/auth/login` and send `Authorization: Bearer <access_token>`. Every \
            error is JSON with a stable `code` and a human `message`. GET answers carry an \
            `ETag`; send it back in `If-None-Match` for a 304. Metric definitions: \
            `GET /api/v1/metrics/definitions` (docs/METRICS.md)."
    ),
    paths(
        dashboards::overview,
        dashboards::team,
        dashboards::developer,
        dashboards::repositories,
        dashboards::dora,
        dashboards::daily,
        dashboards::definitions,
        alerts::list,
        alerts::acknowledge,
        admin::cron_runs,
        users::me,
        users::list,
        users::show,
        organization::show,
        teams::list,
        teams::show,
        devices::list,
        sessions::list,
        sessions::attendance,
        admin::list,
        admin::show,
        admin::sync_jobs,
        deployments::list_keys,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "dashboards", description = "Reads of the precomputed tables"),
        (name = "alerts", description = "Health alerts"),
        (name = "admin", description = "For owners and admins"),
        (name = "people", description = "You, your organization, its people and teams, your devices"),
        (name = "attendance", description = "Work sessions and attendance summaries"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document, as served (pretty JSON, stable order).
pub fn json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
