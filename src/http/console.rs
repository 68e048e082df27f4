//! `GET /console`: the operator console, a static single-page client of the public API.
//! Its files are compiled into the binary; it loads nothing from elsewhere.

use actix_web::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use actix_web::http::Method;
use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::Router;

/// Scripts and styles only from files of this origin (no inline code), requests only to
/// this origin, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// `(name, content type, bytes)` of each file under `console/`.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../console/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../console/app.css"),
    ),
];

pub fn routes(r: &mut impl Router) {
    r.add(Method::GET, "/console", index)
        .add(Method::GET, "/console/", index)
        .add(Method::GET, "/console/{file}", asset);
}

fn serve(name: &str) -> Result<HttpResponse, ApiError> {
    let (_, content_type, body) = FILES
        .iter()
        .find(|(file, _, _)| *file == name)
        .ok_or_else(|| ApiError::not_found("NOT_FOUND", "no such console file"))?;
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, *content_type))
        .insert_header((CONTENT_SECURITY_POLICY, CSP))
        .insert_header((X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((X_FRAME_OPTIONS, "DENY"))
        .insert_header((REFERRER_POLICY, "no-referrer"))
        // Small files that change with the binary: always revalidate.
        .insert_header((CACHE_CONTROL, "no-cache"))
        .body(*body))
}

async fn index() -> Result<HttpResponse, ApiError> {
    serve("index.html")
}

async fn asset(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    serve(&file)
}
