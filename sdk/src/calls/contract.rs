//! The IAM contract (`iam/contract.json`) as the tests read it: for each component
//! (a command, a function, a service role), the actions it calls and the resources
//! it calls them on. [`assert_within`] fails a test when a recorded call is outside
//! its component's contract, naming the component, the action and the resource.
//!
//! Resources in the contract are ARN patterns with `{Placeholder}`s for what a
//! deployment names (`{ResultsBucket}`, `{ProductTable}`) and IAM's wildcards (`*`,
//! `?`). A test binds the placeholders it knows (the bucket it made); the others
//! match anything.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Call;

/// The contract's text, as committed.
pub const CONTRACT_JSON: &str = include_str!("../../../iam/contract.json");

/// One entry: every action of `actions` on every resource of `resources`, and why.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub why: String,
}

impl Entry {
    /// Whether this entry allows `action` on `resource` once `bindings` are bound.
    fn allows(&self, action: &str, resource: &str, bindings: &[(&str, &str)]) -> bool {
        self.actions.iter().any(|a| a == action)
            && self.resources.iter().any(|r| glob(&bind(r, bindings), resource))
    }
}

/// One component of the contract.
#[derive(Debug, Clone, Deserialize)]
pub struct Component {
    pub principal: String,
    /// What its code calls (recorded by the tests).
    #[serde(default)]
    pub calls: Vec<Entry>,
}

/// One principal, as far as the tests read it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Principal {
    /// Principals whose components' calls it may make too (a role that runs an
    /// operator's command: the game day's task runs `tandem dr-drill`).
    #[serde(default)]
    pub includes: Vec<String>,
}

/// The parts of the contract the Rust tests read.
#[derive(Debug, Clone, Deserialize)]
pub struct Contract {
    pub components: BTreeMap<String, Component>,
    #[serde(default)]
    pub principals: BTreeMap<String, Principal>,
}

impl Contract {
    /// The committed contract.
    pub fn load() -> Self {
        Self::parse(CONTRACT_JSON).unwrap_or_else(|e| panic!("iam/contract.json: {e}"))
    }

    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// What `component` may call: its own entries and those of every component whose
    /// principal its principal includes.
    fn entries<'a>(&'a self, component: &'a Component) -> Vec<&'a Entry> {
        let mut out: Vec<&Entry> = component.calls.iter().collect();
        let includes = self
            .principals
            .get(&component.principal)
            .map(|p| p.includes.as_slice())
            .unwrap_or_default();
        for c in self.components.values() {
            if includes.contains(&c.principal) {
                out.extend(c.calls.iter());
            }
        }
        out
    }

    /// Every recorded call that its component's contract does not allow, as one
    /// message per need; empty when all are inside.
    pub fn outside(&self, calls: &[Call], bindings: &[(&str, &str)]) -> Vec<String> {
        let mut problems = Vec::new();
        for call in calls {
            let Some(component) = self.components.get(&call.component) else {
                problems.push(format!(
                    "component {:?} is not in iam/contract.json (it called {} {})",
                    call.component, call.service, call.operation
                ));
                continue;
            };
            if call.needs.is_empty() {
                problems.push(format!(
                    "{}: {} {} has no IAM mapping: add it to the service's resolver (tandem_aws::calls::resolve)",
                    call.component, call.service, call.operation
                ));
            }
            let entries = self.entries(component);
            for need in &call.needs {
                let allowed = entries
                    .iter()
                    .any(|e| e.allows(&need.action, &need.resource, bindings));
                if !allowed {
                    let same_action: Vec<String> = entries
                        .iter()
                        .filter(|e| e.actions.contains(&need.action))
                        .flat_map(|e| e.resources.iter().map(|r| bind(r, bindings)))
                        .fold(Vec::new(), |mut v, r| {
                            if !v.contains(&r) {
                                v.push(r);
                            }
                            v
                        });
                    problems.push(format!(
                        "{}: {} on {} ({} {}) is not in its contract{}",
                        call.component,
                        need.action,
                        need.resource,
                        call.service,
                        call.operation,
                        if same_action.is_empty() {
                            String::new()
                        } else {
                            format!(", which allows that action only on {}", same_action.join(", "))
                        }
                    ));
                }
            }
        }
        problems.sort();
        problems.dedup();
        problems
    }
}

/// Panics, naming every call outside the contract, unless all `calls` are inside.
pub fn assert_within(calls: &[Call], bindings: &[(&str, &str)]) {
    let problems = Contract::load().outside(calls, bindings);
    assert!(
        problems.is_empty(),
        "calls outside the IAM contract (iam/contract.json):\n  {}",
        problems.join("\n  ")
    );
}

/// [`assert_within`] over a call log file; returns the calls for further checks.
pub fn assert_log_within(path: &std::path::Path, bindings: &[(&str, &str)]) -> Vec<Call> {
    let calls = super::read_log(path).unwrap_or_else(|e| panic!("reading the call log: {e}"));
    assert_within(&calls, bindings);
    calls
}

/// The calls one test makes as one component, checked against the contract when
/// the test ends (when this is dropped, unless the test is already failing):
///
/// ```ignore
/// let calls = Calls::new("watch function");
/// let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&rule], |c| c
///     .interceptor(calls.recorder(resolve::batch)));
/// ```
pub struct Calls {
    log: super::CallLog,
    component: String,
    bindings: Vec<(String, String)>,
}

impl Calls {
    pub fn new(component: &str) -> Self {
        Self {
            log: super::CallLog::memory(),
            component: component.to_string(),
            bindings: Vec::new(),
        }
    }

    /// Binds `placeholder` to `value` for the check.
    pub fn bind(mut self, placeholder: &str, value: &str) -> Self {
        self.bindings.push((placeholder.to_string(), value.to_string()));
        self
    }

    /// An interceptor recording into these calls.
    pub fn recorder(&self, resolver: super::Resolver) -> super::Recorder {
        super::Recorder::new(self.log.clone(), &self.component, resolver)
    }

    /// What was recorded so far.
    pub fn calls(&self) -> Vec<Call> {
        self.log.calls()
    }

    /// The actions recorded so far, in order, without repeats.
    pub fn actions(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in self.calls().iter().flat_map(|c| c.needs.iter()) {
            if !out.contains(&n.action) {
                out.push(n.action.clone());
            }
        }
        out
    }
}

impl Drop for Calls {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let bindings: Vec<(&str, &str)> = self
            .bindings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_within(&self.log.calls(), &bindings);
    }
}

/// `pattern` with its bound `{Placeholder}`s replaced by their values and the
/// others by `*`.
pub fn bind(pattern: &str, bindings: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = &rest[open + 1..open + close];
        match bindings.iter().find(|(k, _)| *k == name) {
            Some((_, v)) => out.push_str(v),
            None => out.push('*'),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// IAM's wildcard match: `*` any run of characters, `?` any one.
pub fn glob(pattern: &str, value: &str) -> bool {
    let (p, v) = (pattern.as_bytes(), value.as_bytes());
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, vi));
            pi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::Need;

    #[test]
    fn wildcards_match_as_iam_matches_them() {
        assert!(glob(
            "arn:aws:s3:::b/runs/*",
            "arn:aws:s3:::b/runs/R/results/00001.parquet"
        ));
        assert!(!glob("arn:aws:s3:::b/runs/*", "arn:aws:s3:::b/other/x"));
        assert!(glob("*", ""));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob(
            "arn:*:table/Product*",
            "arn:aws:dynamodb:us-east-2:1:table/Product-x"
        ));
        assert!(!glob(
            "arn:*:table/Product*",
            "arn:aws:dynamodb:us-east-2:1:table/DisasterRecoveryStack-Product-x"
        ));
    }

    #[test]
    fn placeholders_bind_or_match_anything() {
        assert_eq!(
            bind(
                "arn:{Partition}:s3:::{Bucket}/{Prefix}/*",
                &[("Bucket", "b"), ("Partition", "aws")]
            ),
            "arn:aws:s3:::b/*/*"
        );
    }

    fn contract() -> Contract {
        Contract::parse(
            r#"{"components": {"c": {"principal": "p", "calls": [
                {"actions": ["s3:PutObject"], "resources": ["arn:{Partition}:s3:::{Bucket}/runs/*"], "why": "w"}
            ]}}}"#,
        )
        .unwrap()
    }

    fn call(component: &str, action: &str, resource: &str) -> Call {
        Call {
            component: component.into(),
            service: "S3".into(),
            operation: "PutObject".into(),
            needs: vec![Need::new(action, resource)],
        }
    }

    #[test]
    fn a_call_outside_is_named_with_its_component_action_and_resource() {
        let c = contract();
        let b = [("Bucket", "b")];
        assert!(
            c.outside(&[call("c", "s3:PutObject", "arn:aws:s3:::b/runs/1")], &b)
                .is_empty()
        );
        let p = c.outside(&[call("c", "s3:PutObject", "arn:aws:s3:::other/runs/1")], &b);
        assert_eq!(p.len(), 1);
        assert!(
            p[0].contains("c: s3:PutObject on arn:aws:s3:::other/runs/1"),
            "{p:?}"
        );
        assert!(p[0].contains("only on arn:*:s3:::b/runs/*"), "{p:?}");
        let p = c.outside(&[call("c", "s3:DeleteObject", "arn:aws:s3:::b/runs/1")], &b);
        assert!(p[0].contains("s3:DeleteObject"), "{p:?}");
        let p = c.outside(&[call("nobody", "s3:PutObject", "arn:aws:s3:::b/runs/1")], &b);
        assert!(p[0].contains("\"nobody\" is not in"), "{p:?}");
        let mut unmapped = call("c", "x", "y");
        unmapped.needs.clear();
        let p = c.outside(&[unmapped], &b);
        assert!(p[0].contains("has no IAM mapping"), "{p:?}");
    }

    #[test]
    fn a_component_may_make_the_calls_of_the_principals_its_principal_includes() {
        let c = Contract::parse(
            r#"{"components": {
                "operator": {"principal": "op", "calls": [
                    {"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::b/*"], "why": "w"}]},
                "task": {"principal": "task-role", "calls": [
                    {"actions": ["s3:PutObject"], "resources": ["arn:aws:s3:::b/*"], "why": "w"}]},
                "other": {"principal": "lonely", "calls": []}},
              "principals": {"task-role": {"includes": ["op"]}, "op": {}, "lonely": {}}}"#,
        )
        .unwrap();
        let get = |who| call(who, "s3:GetObject", "arn:aws:s3:::b/k");
        assert!(c.outside(&[get("task")], &[]).is_empty());
        assert!(
            c.outside(&[call("task", "s3:PutObject", "arn:aws:s3:::b/k")], &[])
                .is_empty()
        );
        // Not the other way round, and not for a principal that includes nothing.
        assert_eq!(
            c.outside(&[call("operator", "s3:PutObject", "arn:aws:s3:::b/k")], &[])
                .len(),
            1
        );
        assert_eq!(c.outside(&[get("other")], &[]).len(), 1);
    }

    #[test]
    fn the_committed_contract_parses_and_every_entry_has_a_reason() {
        let c = Contract::load();
        assert!(!c.components.is_empty());
        for (name, comp) in &c.components {
            for e in &comp.calls {
                assert!(!e.why.trim().is_empty(), "{name}: {:?} has no reason", e.actions);
                assert!(
                    !e.actions.is_empty() && !e.resources.is_empty(),
                    "{name}: an empty entry"
                );
                for a in &e.actions {
                    assert!(
                        a.contains(':') && !a.contains('*'),
                        "{name}: {a} is not service:Action"
                    );
                }
            }
        }
    }
}
