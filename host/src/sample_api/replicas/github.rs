//! Github (not yet written).
#![allow(unused)]
use super::*;
pub(crate) const TOKEN: &str = "ghp_R3pl1caT0kenF0rIncsyncTe5ts0000001";
pub(crate) struct Github;
impl Github {
    pub fn new(n: usize, seed: u64, rate_limits: bool, now: Millis) -> Github {
        Github
    }
}
impl Replica for Github {
    fn handle(&mut self, _: &Request<'_>, _: Millis) -> Reply {
        Reply::json(404, &Value::Null)
    }
    fn change(&mut self, _: usize, _: usize, _: Millis) {}
    fn objects(&self) -> Vec<Value> {
        Vec::new()
    }
}
