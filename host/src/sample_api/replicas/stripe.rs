//! Stripe (not yet written).
#![allow(unused)]
use super::*;
pub(crate) const API_KEY: &str = "sk_test_51NzQpKIncsyncRep1icaK3yT35tM0de";
pub(crate) struct Stripe;
impl Stripe {
    pub fn new(n: usize, seed: u64, rate_limits: bool, now: Millis) -> Stripe {
        Stripe
    }
}
impl Replica for Stripe {
    fn handle(&mut self, _: &Request<'_>, _: Millis) -> Reply {
        Reply::json(404, &Value::Null)
    }
    fn change(&mut self, _: usize, _: usize, _: Millis) {}
    fn objects(&self) -> Vec<Value> {
        Vec::new()
    }
}
