//! Middleware that every request passes before its handler: it logs the request, waits for the
//! delay set on its route, checks the bearer token and returns an injected fault if one is pending
//! for the route.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api::ApiError;
use super::state::{Fault, Shared, State as FakeState};
use super::{RecordedRequest, Route};

/// Maximum request body the fake reads, far above what the pipeline sends.
const MAX_BODY_BYTES: usize = 1 << 20;

pub(crate) async fn check(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let received_at = Instant::now();
    let route = Route::of(request.method(), request.uri().path());
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, MAX_BODY_BYTES).await else {
        return ApiError::bad_request("Request body is too large or was cut off").into_response();
    };

    let delay = {
        let mut state = shared.lock();
        state.requests.push(RecordedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            body: body.to_vec(),
            route,
            received_at,
        });
        delay_for(&state, route)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }

    if !has_token(&parts.headers, &shared.token) {
        return ApiError::new(StatusCode::UNAUTHORIZED, "Not Authorized").into_response();
    }
    if let Some(response) = take_fault(&mut shared.lock(), route) {
        return response;
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

fn delay_for(state: &FakeState, route: Option<Route>) -> Option<std::time::Duration> {
    let own = route.and_then(|route| state.delays.get(&route));
    own.or_else(|| state.delays.get(&Route::Any)).copied()
}

fn has_token(headers: &HeaderMap, token: &str) -> bool {
    let expected = format!("Bearer {token}");
    headers
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == expected.as_bytes())
}

/// Uses up one response of the first pending fault for `route` and renders it.
fn take_fault(state: &mut FakeState, route: Option<Route>) -> Option<Response> {
    let index = state
        .faults
        .iter()
        .position(|fault| fault.route.matches(route) && fault.remaining > 0)?;
    let fault = &mut state.faults[index];
    fault.remaining -= 1;
    let response = fault_response(fault);
    state.faults.retain(|fault| fault.remaining > 0);
    Some(response)
}

fn fault_response(fault: &Fault) -> Response {
    let reason = fault.status.canonical_reason().unwrap_or("Error");
    let message = format!("{reason} (fault injected by the Asana fake)");
    let mut response = ApiError::new(fault.status, message).into_response();
    if let Some(seconds) = fault.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
