//! Every AWS call a process makes, as the IAM actions and resources it needs.
//!
//! Each SDK client tandem builds goes through [`instrument!`](crate::instrument),
//! which adds a [`Recorder`] when calls are being recorded: an interceptor that reads
//! each operation's input before it is sent and turns it into what IAM must allow
//! for it ([`Need`]: an action and the ARN of the resource it acts on). The mapping
//! from an operation to its actions and resources is written once per service (a
//! [`Resolver`]), from AWS's Service Authorization Reference
//! (<https://docs.aws.amazon.com/service-authorization/latest/reference/>).
//!
//! Recording is on when `TANDEM_AWS_CALL_LOG=FILE` is set (one JSON line per call is
//! appended to FILE: what to check a hand-written IAM policy against) or when a test
//! builds a client with a [`Recorder`] over a [`CallLog::memory`]. The tests check
//! every recorded call against the IAM contract (`iam/contract.json`, see
//! [`contract`]), so the contract cannot fall behind the code.
//!
//! ARNs are recorded as the calls name them. Where a call names a resource by name
//! only, the ARN is made in the client's region with `*` for the account (a client
//! does not know its account); the contract check compares ARNs with the account
//! left out.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, Input,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde::{Deserialize, Serialize};

#[cfg(feature = "contract")]
pub mod contract;

/// The environment variable that turns recording on for a process.
pub const CALL_LOG_ENV: &str = "TANDEM_AWS_CALL_LOG";

/// One permission a call needs: IAM `action` on `resource` (an ARN, or `*` for
/// actions that support no resource-level permissions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Need {
    pub action: String,
    pub resource: String,
}

impl Need {
    pub fn new(action: &str, resource: impl Into<String>) -> Self {
        Self {
            action: action.to_string(),
            resource: resource.into(),
        }
    }
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// Who made it: a command (`tandem watch`), a function (`watch function`).
    pub component: String,
    /// The SDK's service and operation names (`S3`, `PutObject`).
    pub service: String,
    pub operation: String,
    /// What IAM must allow for it. Empty when the service's resolver does not know
    /// the operation, which the contract check reports as a call to map.
    pub needs: Vec<Need>,
}

/// The operation being resolved: its names, input and where it goes.
pub struct Operation<'a> {
    pub service: &'a str,
    pub name: &'a str,
    pub input: &'a Input,
    pub region: &'a str,
}

impl Operation<'_> {
    /// The input as the operation's own type.
    pub fn input<T: fmt::Debug + Send + Sync + 'static>(&self) -> Option<&T> {
        self.input.downcast_ref::<T>()
    }

    /// The partition of the client's region.
    pub fn partition(&self) -> &'static str {
        partition(self.region)
    }

    /// `arn:PARTITION:SERVICE:REGION:*:RESOURCE` for a resource named by name in this
    /// operation's region; an ARN given in the input is returned as it is.
    pub fn arn(&self, service: &str, resource: &str, given: &str) -> String {
        self.arn_in(self.region, service, resource, given)
    }

    /// [`Operation::arn`] in another region.
    pub fn arn_in(&self, region: &str, service: &str, resource: &str, given: &str) -> String {
        if given.starts_with("arn:") {
            return given.to_string();
        }
        format!("arn:{}:{service}:{region}:*:{resource}", self.partition())
    }

    /// An IAM role's ARN (global: no region), from an ARN or a name.
    pub fn role_arn(&self, given: &str) -> String {
        if given.starts_with("arn:") {
            given.to_string()
        } else {
            format!("arn:{}:iam::*:role/{given}", self.partition())
        }
    }
}

/// The partition a region belongs to.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Turns one service's operations into what IAM must allow for them; `None` for an
/// operation it does not know.
pub type Resolver = fn(&Operation<'_>) -> Option<Vec<Need>>;

/// Where recorded calls go.
#[derive(Clone)]
pub struct CallLog(Arc<Mutex<Sink>>);

enum Sink {
    Memory(Vec<Call>),
    File {
        file: std::fs::File,
        path: String,
        failed: bool,
    },
}

impl fmt::Debug for CallLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallLog")
    }
}

impl CallLog {
    /// Keeps the calls in memory ([`CallLog::calls`]).
    pub fn memory() -> Self {
        Self(Arc::new(Mutex::new(Sink::Memory(Vec::new()))))
    }

    /// Appends one JSON line per call to `path` (created if missing).
    pub fn file(path: &str) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self(Arc::new(Mutex::new(Sink::File {
            file,
            path: path.to_string(),
            failed: false,
        }))))
    }

    /// The calls recorded so far in memory (none for a file log).
    pub fn calls(&self) -> Vec<Call> {
        match &*self.lock() {
            Sink::Memory(calls) => calls.clone(),
            Sink::File { .. } => Vec::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sink> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, call: Call) {
        match &mut *self.lock() {
            Sink::Memory(calls) => calls.push(call),
            Sink::File { file, path, failed } => {
                let mut line = serde_json::to_vec(&call).unwrap_or_default();
                line.push(b'\n');
                // One write per line: with O_APPEND, lines of processes sharing the
                // file do not interleave.
                if let Err(e) = file.write_all(&line)
                    && !*failed
                {
                    *failed = true;
                    tracing::warn!("could not record AWS calls in {path}: {e}");
                }
            }
        }
    }
}

/// Reads a call log file written through [`CALL_LOG_ENV`]; a missing file is no calls.
pub fn read_log(path: &std::path::Path) -> std::io::Result<Vec<Call>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}: {l}", path.display()),
                )
            })
        })
        .collect()
}

static COMPONENT: OnceLock<String> = OnceLock::new();

/// Names this process's component in the calls it records (`tandem watch`, `watch
/// function`); the first name set wins.
pub fn set_component(name: &str) {
    let _ = COMPONENT.set(name.to_string());
}

/// The process's log, from [`CALL_LOG_ENV`] (opened once).
fn env_log() -> Option<CallLog> {
    static LOG: OnceLock<Option<CallLog>> = OnceLock::new();
    LOG.get_or_init(|| {
        let path = std::env::var(CALL_LOG_ENV).ok().filter(|p| !p.is_empty())?;
        match CallLog::file(&path) {
            Ok(log) => Some(log),
            Err(e) => {
                tracing::warn!("{CALL_LOG_ENV}={path}: cannot open it, calls are not recorded: {e}");
                None
            }
        }
    })
    .clone()
}

static PROCESS_LOG: OnceLock<CallLog> = OnceLock::new();

/// Records every call of this process's clients into `log`, as [`CALL_LOG_ENV`]
/// does into a file (a test that runs a component in-process; the first log wins).
pub fn record_process(log: CallLog) {
    let _ = PROCESS_LOG.set(log);
}

/// The recorder for a client of the service `resolver` knows, when this process
/// records its calls ([`record_process`], [`CALL_LOG_ENV`]).
pub fn recorder(resolver: Resolver) -> Option<Recorder> {
    let log = PROCESS_LOG.get().cloned().or_else(env_log)?;
    let component = COMPONENT.get().cloned().unwrap_or_else(|| "unnamed".into());
    Some(Recorder::new(log, &component, resolver))
}

/// The interceptor that records each call of one client.
#[derive(Clone)]
pub struct Recorder {
    log: CallLog,
    component: String,
    resolver: Resolver,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("component", &self.component)
            .finish()
    }
}

impl Recorder {
    /// Records into `log` as `component`, mapping operations with `resolver`.
    pub fn new(log: CallLog, component: &str, resolver: Resolver) -> Self {
        Self {
            log,
            component: component.to_string(),
            resolver,
        }
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "tandem::calls::Recorder"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Not read_before_execution: a client's interceptors see that before the
        // operation's configuration (its Metadata) is in the bag.
        let (service, name) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_string(), m.name().to_string()))
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        let region = cfg
            .load::<aws_config::Region>()
            .map(|r| r.to_string())
            .unwrap_or_default();
        let op = Operation {
            service: &service,
            name: &name,
            input: context.input(),
            region: &region,
        };
        let needs = (self.resolver)(&op).unwrap_or_default();
        self.log.push(Call {
            component: self.component.clone(),
            service,
            operation: name,
            needs,
        });
        Ok(())
    }
}

/// Adds the process's [`Recorder`] (when it records its calls) to an SDK client's
/// config builder: `instrument!(aws_sdk_s3::config::Builder::from(cfg), resolve::s3)`.
#[macro_export]
macro_rules! instrument {
    ($builder:expr, $resolver:expr) => {{
        let builder = $builder;
        match $crate::calls::recorder($resolver) {
            Some(r) => builder.interceptor(r),
            None => builder,
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_arns_in_the_clients_region_and_partition() {
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition("us-east-2"), "aws");
    }

    #[test]
    fn a_file_log_appends_lines_that_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        let log = CallLog::file(path.to_str().unwrap()).unwrap();
        let call = Call {
            component: "c".into(),
            service: "S3".into(),
            operation: "GetObject".into(),
            needs: vec![Need::new("s3:GetObject", "arn:aws:s3:::b/k")],
        };
        log.push(call.clone());
        log.push(call.clone());
        assert_eq!(read_log(&path).unwrap(), vec![call.clone(), call]);
        assert!(read_log(&dir.path().join("missing")).unwrap().is_empty());
        std::fs::write(&path, "not json\n").unwrap();
        let err = read_log(&path).unwrap_err().to_string();
        assert!(err.contains("not json"), "{err}");
    }
}
