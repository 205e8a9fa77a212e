//! `x-request-id`: every request has one (the client's, or one made here),
//! and its response carries it back.
//!
//! tower-http's `SetRequestIdLayer` and `PropagateRequestIdLayer` do the
//! same, and also store the id in the request's and the response's
//! extensions, which nothing here reads: that is a map allocated, filled
//! and freed per response, a few percent of a publish's instructions.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use axum::http::{HeaderName, HeaderValue, Request, Response};
use tower::{Layer, Service};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives every request an `x-request-id` and its response the same.
#[derive(Clone, Default)]
pub struct RequestIdLayer {
    next: NextRequestId,
}

/// The service [`RequestIdLayer`] makes.
#[derive(Clone)]
pub struct RequestIds<S> {
    inner: S,
    next: NextRequestId,
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIds<S>;

    fn layer(&self, inner: S) -> RequestIds<S> {
        RequestIds {
            inner,
            next: self.next.clone(),
        }
    }
}

impl<S, B, R> Service<Request<B>> for RequestIds<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = WithRequestId<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = match request.headers().get(&X_REQUEST_ID) {
            Some(given) => given.clone(),
            None => {
                let made = self.next.make();
                request.headers_mut().insert(X_REQUEST_ID, made.clone());
                made
            }
        };
        WithRequestId {
            inner: self.inner.call(request),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    /// A response future whose response gets the request's id.
    pub struct WithRequestId<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, R, E> Future for WithRequestId<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            response.headers_mut().entry(X_REQUEST_ID).or_insert(id);
        }
        Poll::Ready(Ok(response))
    }
}

/// Request ids for requests that come without `x-request-id`: a random
/// per-process prefix and a counter, cheaper than a UUID per request.
#[derive(Clone)]
struct NextRequestId {
    /// Eight hex digits and a dash.
    prefix: Arc<str>,
    counter: Arc<AtomicU64>,
}

impl Default for NextRequestId {
    fn default() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let prefix = nanos ^ std::process::id().rotate_left(16);
        Self {
            prefix: format!("{prefix:08x}-").into(),
            counter: Arc::default(),
        }
    }
}

impl NextRequestId {
    fn make(&self) -> HeaderValue {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = [&*self.prefix, itoa::Buffer::new().format(n)].concat();
        HeaderValue::try_from(id).expect("hex digits, a dash and decimal digits")
    }
}
