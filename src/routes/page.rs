//! `GET /` (the chat page) and `GET /widget` (the chat alone, for an iframe). Both are chrome
//! around the same chat, which `/assets/js/chat.js` builds.

use actix_web::HttpResponse;
use askama::Template;

#[derive(Template)]
#[template(path = "index.html")]
struct Index;

#[derive(Template)]
#[template(path = "widget.html")]
struct Widget;

pub async fn index() -> actix_web::Result<HttpResponse> {
    html(Index.render())
}

pub async fn widget() -> actix_web::Result<HttpResponse> {
    html(Widget.render())
}

fn html(rendered: askama::Result<String>) -> actix_web::Result<HttpResponse> {
    let body = rendered.map_err(actix_web::error::ErrorInternalServerError)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("cache-control", "no-cache"))
        .body(body))
}
