//! Bearer-token checks for every gRPC call but the Flight `Handshake` and health checks.
//!
//! A tower layer around the whole gRPC server, because only there is the called method (the
//! request path) known: tonic's interceptors do not see it. Calls without a valid token are
//! refused with `Unauthenticated` before any service code runs; an accepted call carries its
//! user to the service as a [`Caller`] in the request's extensions.

use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::{BoxFuture, Service};
use tower::Layer;

use crate::auth::Authenticator;

/// The one Flight call that needs no token: it is how a client gets one.
const HANDSHAKE_PATH: &str = "/arrow.flight.protocol.FlightService/Handshake";

/// Health checks need no token either: probes carry none, and the answer (serving or not)
/// reveals nothing of the data.
const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// The user whose token a call carried (in the request's extensions).
#[derive(Debug, Clone)]
pub struct Caller(pub String);

/// Adds [`RequireToken`] to a service stack.
#[derive(Clone)]
pub struct RequireTokenLayer {
    auth: Arc<Authenticator>,
}

impl RequireTokenLayer {
    pub fn new(auth: Arc<Authenticator>) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for RequireTokenLayer {
    type Service = RequireToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireToken {
            inner,
            auth: Arc::clone(&self.auth),
        }
    }
}

/// Refuses calls without a valid `authorization: Bearer` token.
#[derive(Clone)]
pub struct RequireToken<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

impl<S, B> Service<Request<B>> for RequireToken<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let path = request.uri().path();
        if path != HANDSHAKE_PATH && !path.starts_with(HEALTH_PREFIX) {
            let header = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            match self.auth.verify_bearer(header) {
                Ok(user) => {
                    request.extensions_mut().insert(Caller(user));
                }
                Err(e) => {
                    let refused = tonic::Status::unauthenticated(e.to_string()).into_http();
                    return Box::pin(async move { Ok(refused) });
                }
            }
        }
        // The clone that was polled ready serves this call (tower's convention).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(inner.call(request))
    }
}
