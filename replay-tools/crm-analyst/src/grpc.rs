//! Calls to a running service: the bearer token on every request, a refusal as an
//! [`AnalystError::Service`] naming the gRPC code.

use crate::AnalystError;

pub(crate) fn authed<T>(message: T, token: &str) -> Result<tonic::Request<T>, AnalystError> {
    let mut r = tonic::Request::new(message);
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| AnalystError::Service("the token is not a valid header value".into()))?;
    r.metadata_mut().insert("authorization", value);
    Ok(r)
}

pub(crate) fn refused(s: &tonic::Status) -> AnalystError {
    AnalystError::Service(format!("{:?}: {}", s.code(), s.message()))
}

/// A call's answer, or the refusal as an [`AnalystError`].
pub(crate) fn answer<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<T, AnalystError> {
    r.map(tonic::Response::into_inner).map_err(|s| refused(&s))
}
