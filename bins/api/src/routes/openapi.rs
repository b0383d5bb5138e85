//! `GET /openapi.json`: the OpenAPI 3.1 document of `/api/v1`, made from the routes' `#[utoipa::path]`
//! annotations and the body types of `rh_protocol::api` (`docs/api.md` says how it is checked and regenerated).
//!
//! The error replies every operation can give are added here from what the operation has, rather than repeated on
//! each annotation: 400 and 503 everywhere (a bad URI, a request timeout, a dependency down), 401 with a bearer
//! token, 404 with path parameters (an id that is not a UUID, or not visible to the caller), 413 and 415 with a
//! body. What only some operations answer (403, 409, 422, 429) is on their annotations.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref, RefOr, Type};
use utoipa::{OpenApi as _, ToSchema};

use rh_protocol::api::ErrorBody;
use std::sync::LazyLock;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "RelayHub API",
        version = "1",
        description = "REST API v1 of RelayHub. Errors are `{\"error\":{\"code\",\"message\"}}`; sign in with \
                       `POST /auth/login` and send `Authorization: Bearer <token>`."
    ),
    servers((url = "/api/v1")),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// The shared parts of the document: title, server, the error body.
pub(super) fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// Error replies in `components.responses`, by status: (status, name, description).
const ERRORS: &[(&str, &str, &str)] = &[
    ("400", "BadRequest", "The request is malformed or a field is invalid."),
    ("401", "Unauthorized", "Missing, invalid or expired token, or the session ended."),
    ("403", "Forbidden", "Signed in, but not allowed to do this."),
    ("404", "NotFound", "No such thing, or not visible to the caller."),
    ("409", "Conflict", "It exists already."),
    ("413", "TooLarge", "The body is too large."),
    ("415", "UnsupportedMediaType", "The body's content type is not accepted."),
    ("422", "UnknownModel", "No AI worker serves this model (`unknown_model`): pick one of `GET /models`."),
    ("429", "RateLimited", "Over a limit: try again after `Retry-After` seconds."),
    (
        "502",
        "BadGateway",
        "The organization's identity provider did not answer as expected (`sso_provider_unavailable`).",
    ),
    ("503", "Unavailable", "A dependency did not answer in time; try again."),
];

/// The whole document: routes, shared parts, the bearer scheme and every operation's error replies.
pub fn document() -> OpenApi {
    let (_, mut doc) = super::routes(0).split_for_parts();
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    for (status, name, description) in ERRORS {
        let body = ContentBuilder::new().schema(Some(Ref::from_schema_name(ErrorBody::name()))).build();
        let mut response = ResponseBuilder::new().description(*description).content("application/json", body);
        if *status == "429" {
            let seconds =
                HeaderBuilder::new().schema(Some(utoipa::openapi::ObjectBuilder::new().schema_type(Type::Integer)));
            response = response.header("Retry-After", seconds.description(Some("seconds to wait")).build());
        }
        components.responses.insert((*name).to_owned(), RefOr::T(response.build()));
    }
    for item in doc.paths.paths.values_mut() {
        let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for op in ops.into_iter().flatten() {
            add_errors(op);
        }
    }
    doc
}

fn add_errors(op: &mut Operation) {
    let with_token = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let with_path = op.parameters.iter().flatten().any(|p| match p {
        RefOr::T(p) => matches!(p.parameter_in, ParameterIn::Path),
        RefOr::Ref(_) => false,
    });
    let with_body = op.request_body.is_some();
    let responses = &mut op.responses.responses;
    let wanted: Vec<_> = ERRORS
        .iter()
        // What the annotation names is replaced by the shared entry (with its body) too.
        .filter(|(status, ..)| {
            responses.contains_key(*status)
                || match *status {
                    "400" | "503" => true,
                    "401" => with_token,
                    "404" => with_path,
                    "413" | "415" => with_body,
                    _ => false,
                }
        })
        .collect();
    for (status, name, _) in wanted {
        responses.insert((*status).to_owned(), RefOr::Ref(Ref::from_response_name(*name)));
    }
}

/// The document as served and as committed in `docs/openapi.json` (pretty, ending with a newline).
pub fn json() -> String {
    static JSON: LazyLock<String> =
        LazyLock::new(|| document().to_pretty_json().map(|j| j + "\n").unwrap_or_else(|e| format!("{e}\n")));
    JSON.clone()
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document of this API", content_type = "application/json", body = Object)))]
pub async fn serve() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], json())
}

#[cfg(test)]
mod tests {
    /// The committed `docs/openapi.json` is what the code generates, so a contract change shows in review.
    /// `RH_WRITE_OPENAPI=1 cargo test -p rh-api --lib openapi` rewrites it.
    #[test]
    fn openapi_json_is_committed() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let now = super::json();
        if std::env::var_os("RH_WRITE_OPENAPI").is_some() {
            std::fs::write(&path, &now).expect("write docs/openapi.json");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == now,
            "docs/openapi.json differs from what the routes generate: run \
             `RH_WRITE_OPENAPI=1 cargo test -p rh-api --lib openapi` and commit the result"
        );
    }

    /// Every handler annotated in `routes/` is an operation of the document and the other way round, and no route
    /// is mounted with plain axum (`.route(`, `.nest(`): such a route would be served but missing from the contract.
    #[test]
    fn every_route_is_in_the_document() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
        let mut annotated = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(&dir).expect("read src/routes") {
            let path = entry.expect("dir entry").path();
            let source = std::fs::read_to_string(&path).expect("read a route module");
            // Tests (like this one) may name what they look for.
            let source = source.split("#[cfg(test)]").next().unwrap_or_default();
            for plain in [".route(", ".nest(", "axum::routing"] {
                assert!(!source.contains(plain), "{} mounts a route with `{plain}`: use `routes!`", path.display());
            }
            for annotation in source.split("#[utoipa::path(").skip(1) {
                let method = annotation.split(',').next().unwrap_or_default().trim().to_owned();
                let route = annotation.split("path = \"").nth(1).and_then(|p| p.split('"').next()).unwrap_or_default();
                annotated.insert((method, route.to_owned()));
            }
        }
        let doc = super::document();
        let mut documented = std::collections::BTreeSet::new();
        for (route, item) in &doc.paths.paths {
            let ops = [("get", &item.get), ("put", &item.put), ("post", &item.post), ("delete", &item.delete)];
            for (method, op) in ops.into_iter().chain([("patch", &item.patch)]) {
                if op.is_some() {
                    documented.insert((method.to_owned(), route.clone()));
                }
            }
        }
        assert_eq!(annotated, documented, "annotated handlers in src/routes vs operations of the document");
    }
}
