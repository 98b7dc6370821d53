//! `tandem plan`: what a run will cost and how long it will take on AWS Batch, before
//! it runs (the model is `tandem_core::cost`, its inputs printed with its answer).

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tandem_core::cost::{self, Compute, Estimate, Inputs, Platform, PriceTable, WorkRate};

use crate::args::{PlanArgs, PlanCompute};
use crate::output;

#[derive(Serialize)]
struct PlanOutput<'a> {
    inputs: &'a Inputs,
    estimate: &'a Estimate,
    /// With --within: the cheapest K in time, or null when none is.
    #[serde(skip_serializing_if = "Option::is_none")]
    within_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cheapest: Option<Cheapest>,
}

#[derive(Serialize)]
struct Cheapest {
    ids_per_node: Option<u64>,
    estimate: Option<Estimate>,
}

fn inputs(a: &PlanArgs) -> Result<Inputs> {
    let mut table = PriceTable::committed();
    if let Some(path) = &a.prices {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading --prices {}", path.display()))?;
        table = table.overridden_by(PriceTable::parse(&text, &path.display().to_string())?);
    }
    let compute = match a.compute {
        PlanCompute::Fargate => Compute::Fargate,
        PlanCompute::Ec2 => Compute::Ec2,
    };
    let mut platform = Platform::stack_default(compute);
    if a.max_vcpus == 0 {
        bail!("--max-vcpus 0 runs nothing: use 1 or more");
    }
    platform.max_vcpus = f64::from(a.max_vcpus);
    match a.vcpu_quota {
        Some(0) => bail!("--vcpu-quota 0 runs nothing: use 1 or more"),
        Some(q) => platform.vcpu_quota = Some(f64::from(q)),
        None => {}
    }
    if let Some(s) = a.startup {
        if !(s.is_finite() && (0.0..=3600.0).contains(&s)) {
            bail!("--startup {s} is out of range: use 0 to 3600 seconds");
        }
        platform.startup_s = s;
    }
    let mut rate = WorkRate::measured();
    if let Some(ms) = a.work_ms_per_id {
        if !(ms.is_finite() && ms >= 0.0) {
            bail!("--work-ms-per-id {ms} is out of range: use 0 or more milliseconds");
        }
        rate.work_ms_per_id = ms;
    }
    if a.records == 0 || a.ids_per_node == 0 {
        bail!(
            "--records {} --ids-per-node {}: both must be at least 1",
            a.records,
            a.ids_per_node
        );
    }
    let children = a.records.div_ceil(a.ids_per_node);
    if children > u64::from(tandem_core::plan::MAX_ARRAY_SIZE) {
        bail!(
            "--records {} at --ids-per-node {} makes {children} children, over AWS Batch's {}: use --ids-per-node {} or more",
            a.records,
            a.ids_per_node,
            tandem_core::plan::MAX_ARRAY_SIZE,
            a.records.div_ceil(u64::from(tandem_core::plan::MAX_ARRAY_SIZE))
        );
    }
    Ok(Inputs {
        records: a.records,
        ids_per_node: a.ids_per_node,
        region: a.region.clone(),
        prices: table.region(&a.region)?.clone(),
        prices_as_of: table.as_of.clone(),
        platform,
        rate,
    })
}

fn dollars(v: f64) -> String {
    if v >= 1.0 {
        format!("${v:.2}")
    } else {
        format!("${v:.4}")
    }
}

fn duration(s: f64) -> String {
    if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.1} s")
    }
}

fn table(i: &Inputs, e: &Estimate) -> String {
    let pf = &i.platform;
    let mut out = format!(
        "{} records, {} IDs per child on {} in {}: {} children, {} container starts\n",
        i.records,
        i.ids_per_node,
        pf.compute.name(),
        i.region,
        e.children,
        e.container_starts
    );
    let billed = match pf.compute {
        Compute::Fargate => format!("billed {:.0} s", e.billed_s_per_task),
        Compute::Ec2 => "the instances billed while the queue drains".to_string(),
    };
    out += &format!(
        "  a task: {:.1} s start-up + {:.1} ms work = {:.1} s, {billed}; {} at once\n",
        pf.startup_s,
        e.work_s * 1000.0,
        e.task_s,
        e.concurrency
    );
    out += &format!("  wall time: {}\n", duration(e.wall_s));
    out += &format!(
        "  cost: {} (prices of {})\n",
        dollars(e.costs.total),
        i.prices_as_of
    );
    for (name, v, share) in e.costs.parts() {
        out += &format!("    {name:<15} {:>10}  {:>5.1}%\n", dollars(v), share * 100.0);
    }
    out += &format!(
        "  inputs: {} vCPUs most{}, a task {} vCPU and {} GB, {} s start-up{}; work {} ms a child + {} ms an ID a stage (measured locally); stage files {} B + {} B an ID\n",
        pf.max_vcpus,
        match pf.vcpu_quota {
            Some(q) => format!(" (the account's quota: {q})"),
            None =>
                " (the account's vCPU quota assumed not to bind: a new account's Fargate quota is 6)".into(),
        },
        pf.task_vcpus,
        pf.task_memory_gb,
        pf.startup_s,
        if pf.instance_boot_s > 0.0 {
            format!(
                ", {} s instance boot ({})",
                pf.instance_boot_s, i.prices.ec2_instance
            )
        } else {
            String::new()
        },
        i.rate.work_ms_per_child,
        i.rate.work_ms_per_id,
        i.rate.file_bytes_fixed,
        i.rate.file_bytes_per_id
    );
    out
}

pub fn plan(a: PlanArgs) -> Result<()> {
    let i = inputs(&a)?;
    let e = cost::estimate(&i)?;
    let within_s = a.within.map(|d| d.as_secs_f64());
    let cheapest = within_s
        .map(|w| cost::cheapest_within(&i, w))
        .transpose()?
        .map(|found| match found {
            Some((k, e)) => Cheapest {
                ids_per_node: Some(k),
                estimate: Some(e),
            },
            None => Cheapest {
                ids_per_node: None,
                estimate: None,
            },
        });
    if a.json {
        return output::json(&PlanOutput {
            inputs: &i,
            estimate: &e,
            within_s,
            cheapest,
        });
    }
    let mut text = table(&i, &e);
    if let (Some(w), Some(c)) = (within_s, &cheapest) {
        match (&c.ids_per_node, &c.estimate) {
            (Some(k), Some(best)) => {
                text += &format!(
                    "within {}: --ids-per-node {k} costs least, {} in {} ({} children)\n",
                    duration(w),
                    dollars(best.costs.total),
                    duration(best.wall_s),
                    best.children
                );
            }
            _ => {
                text += &format!(
                    "within {}: no IDs per child finishes in time (a task alone takes {}); raise --max-vcpus or the target\n",
                    duration(w),
                    duration(e.task_s * 3.0)
                );
            }
        }
    }
    output::text(&text)
}
