//! What an endpoint hands back to the request pipeline.

use std::time::Duration;

use serde_json::Value;

use super::errors::ApiError;

#[derive(Debug)]
pub enum Outcome {
    /// `{"data": value}` plus extra top-level keys (`total`, `changes`).
    Data(Value, Vec<(&'static str, Value)>),
    /// `{"data": <this JSON text>}` for large, pre-serialised results.
    RawData(String),
    Error(ApiError),
    /// Answer only after this much virtual time (agent timeouts).
    After(Duration, Box<Outcome>),
    /// `background_delay`: wait up to `max` for the task, then answer.
    AwaitTask {
        upid: String,
        vmid: u32,
        max: Duration,
    },
    /// A task holds the guest's config lock: retry shortly (the pipeline
    /// gives up after the lock timeout and asks again with `lock_timed_out`).
    Busy,
    /// Forwarding to another node failed: pseudo-status (595…), no body.
    ProxyFailure {
        status: u16,
        reason: String,
    },
}

impl Outcome {
    pub fn data(v: Value) -> Outcome {
        Outcome::Data(v, Vec::new())
    }
}

impl From<ApiError> for Outcome {
    fn from(e: ApiError) -> Self {
        Outcome::Error(e)
    }
}

impl From<Result<Value, ApiError>> for Outcome {
    fn from(r: Result<Value, ApiError>) -> Self {
        match r {
            Ok(v) => Outcome::data(v),
            Err(e) => Outcome::Error(e),
        }
    }
}
