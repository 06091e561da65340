//! Zendesk (not yet written).
#![allow(unused)]
use super::*;
pub(crate) const API_TOKEN: &str = "9fBcRp1c4IncsyncZd0TokenAbCdEfGhIjKlMnOp";
pub(crate) const EMAIL: &str = "sync@example.com";
pub(crate) struct Zendesk;
impl Zendesk {
    pub fn new(n: usize, seed: u64, rate_limits: bool, lag: i64, now: Millis) -> Zendesk {
        Zendesk
    }
}
impl Replica for Zendesk {
    fn handle(&mut self, _: &Request<'_>, _: Millis) -> Reply {
        Reply::json(404, &Value::Null)
    }
    fn change(&mut self, _: usize, _: usize, _: Millis) {}
    fn objects(&self) -> Vec<Value> {
        Vec::new()
    }
}
