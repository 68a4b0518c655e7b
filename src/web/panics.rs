//! A handler that panics answers 500 like any other failure of ours, logged with what it said:
//! the JSON error on `/api/*` (webhooks included), the error page elsewhere. Without this the
//! connection would be dropped, which a client cannot tell from a network fault.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;

use super::error::{ApiError, PageError};

pub async fn answer_panics(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let detail = format!("a handler panicked: {}", what(&*panic));
            if api {
                ApiError::internal(detail).into_response()
            } else {
                PageError::internal(detail).into_response()
            }
        }
    }
}

fn what(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use axum::Router;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn boom() -> &'static str {
        panic!("boom")
    }

    async fn answer(path: &str) -> (StatusCode, String, String) {
        let app = Router::new()
            .route("/api/boom", get(boom))
            .route("/boom", get(boom))
            .layer(axum::middleware::from_fn(answer_panics));
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let kind = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, kind, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_panic_is_a_500_in_the_answer_the_client_expects() {
        let (status, kind, body) = answer("/api/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(kind.starts_with("application/json"), "{kind}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"], "internal_error");
        assert!(!body.contains("boom"), "no detail to the client: {body}");

        let (status, kind, body) = answer("/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(kind.starts_with("text/html"), "{kind}");
        assert!(!body.contains("boom"), "{body}");
    }
}
