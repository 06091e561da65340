//! Hubspot (not yet written).
#![allow(unused)]
use super::*;
pub(crate) const ACCESS_TOKEN: &str = "pat-na1-0f3c2b1a-4d5e-4f60-8a7b-9c0d1e2f3a4b";
pub(crate) struct Hubspot;
impl Hubspot {
    pub fn new(n: usize, seed: u64, rate_limits: bool, cap: usize, now: Millis) -> Hubspot {
        Hubspot
    }
}
impl Replica for Hubspot {
    fn handle(&mut self, _: &Request<'_>, _: Millis) -> Reply {
        Reply::json(404, &Value::Null)
    }
    fn change(&mut self, _: usize, _: usize, _: Millis) {}
    fn objects(&self) -> Vec<Value> {
        Vec::new()
    }
}
