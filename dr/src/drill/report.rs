//! The drill's outputs for people: a table for the terminal and a self-contained
//! HTML report (inline SVG, no scripts, no network).

use std::fmt::Write as _;

use tandem_html::escape as esc;

use super::{DrillReport, MethodResult};

/// One line per method.
pub fn table(r: &DrillReport) -> String {
    let mut s = format!(
        "DR drill: backend {}, primary {}, recovery {}, {} products per method\n\n\
         method        result   RTO ms  RPO ms (measured)  items   missing  extra  different  canaries lost\n",
        r.backend, r.primary_region, r.recovery_region, r.products
    );
    for m in &r.methods {
        let _ = writeln!(
            s,
            "{:<13} {:<6} {:>8.1} {:>18.1} {:>6} {:>9} {:>6} {:>10}  {}/{}",
            m.method.name(),
            if m.passed { "PASS" } else { "FAIL" },
            m.rto_ms,
            m.rpo_ms,
            m.expected_items,
            m.missing,
            m.extra,
            m.different,
            m.canaries_lost,
            m.canaries_acknowledged
        );
        let _ = writeln!(
            s,
            "              RPO by design: {}{}",
            m.rpo_guarantee,
            if m.rpo_judged {
                ""
            } else {
                " (not judged against the RPO target)"
            }
        );
        for c in m.checks.failed() {
            let _ = writeln!(s, "              - FAILED {}: {}", c.kind, c.detail);
        }
    }
    for l in &r.left_behind {
        let _ = writeln!(s, "left behind: {l}");
    }
    let _ = writeln!(
        s,
        "\ntargets: RTO {:.0} ms, RPO {:.0} ms (the failover methods); {}",
        r.rto_target_ms,
        r.rpo_target_ms,
        if r.passed {
            "every method passed"
        } else {
            "SOME METHODS FAILED"
        }
    );
    s
}

/// The HTML report.
pub fn html(r: &DrillReport) -> String {
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tandem DR drill</title><style>\
         body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}\
         table{border-collapse:collapse;margin:8px 0 20px}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}\
         th:first-child,td:first-child{text-align:left}.pass{color:#2a7a2a}.fail{color:#b00020;font-weight:bold}\
         svg{background:#fafafa;border:1px solid #eee}</style></head><body>",
    );
    let _ = write!(
        h,
        "<h1>DR drill: {}</h1><p>backend {}, primary {}, recovery {}, {} products per method</p>",
        if r.passed {
            "<span class=\"pass\">PASS</span>"
        } else {
            "<span class=\"fail\">FAIL</span>"
        },
        esc(&r.backend),
        esc(&r.primary_region),
        esc(&r.recovery_region),
        r.products
    );
    h.push_str("<table><tr><th>method</th><th>result</th><th>RTO ms</th><th>RPO ms measured</th><th style=\"text-align:left\">RPO by design</th><th>items</th><th>missing</th><th>extra</th><th>different</th><th>canaries lost</th></tr>");
    for m in &r.methods {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{:.1}</td><td>{:.1}</td><td style=\"text-align:left\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td></tr>",
            m.method.name(),
            if m.passed { "pass" } else { "fail" },
            if m.passed { "PASS" } else { "FAIL" },
            m.rto_ms,
            m.rpo_ms,
            esc(&m.rpo_guarantee),
            m.expected_items,
            m.missing,
            m.extra,
            m.different,
            m.canaries_lost,
            m.canaries_acknowledged
        );
    }
    h.push_str("</table>");
    // RTO against its target for every method; RPO against its target for the
    // methods it judges (the backup methods' RPO is their schedule's, in the table).
    let judged: Vec<&MethodResult> = r.methods.iter().filter(|m| m.rpo_judged).collect();
    let all: Vec<&MethodResult> = r.methods.iter().collect();
    bars(&mut h, "RTO", "every method", r.rto_target_ms, &all, |m| m.rto_ms);
    if !judged.is_empty() {
        bars(
            &mut h,
            "RPO",
            "the failover methods",
            r.rpo_target_ms,
            &judged,
            |m| m.rpo_ms,
        );
    }
    if !r.left_behind.is_empty() {
        h.push_str("<h2 class=\"fail\">Left behind</h2><ul>");
        for l in &r.left_behind {
            let _ = write!(h, "<li>{}</li>", esc(l));
        }
        h.push_str("</ul>");
    }
    h.push_str("<h2>Timeline of each method</h2>");
    for m in &r.methods {
        let _ = write!(
            h,
            "<h3>{}</h3><table><tr><th>ms</th><th style=\"text-align:left\">step</th></tr>",
            m.method.name()
        );
        for s in &m.steps {
            let _ = write!(
                h,
                "<tr><td>{:.1}</td><td style=\"text-align:left\">{}</td></tr>",
                s.at_ms,
                esc(&s.what)
            );
        }
        h.push_str(
            "</table><table><tr><th>check</th><th>result</th><th style=\"text-align:left\">detail</th></tr>",
        );
        for c in m.checks.iter() {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"{}\">{}</td><td style=\"text-align:left\">{}</td></tr>",
                esc(c.kind.name()),
                if c.ok { "pass" } else { "fail" },
                if c.ok { "ok" } else { "FAILED" },
                esc(&c.detail)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}

/// One bar per method of `get` against `target` (a dashed line).
fn bars(
    h: &mut String,
    label: &str,
    of: &str,
    target: f64,
    methods: &[&MethodResult],
    get: fn(&MethodResult) -> f64,
) {
    let max = methods.iter().map(|m| get(m)).fold(target, f64::max).max(1.0);
    let height = 30.0 + 24.0 * methods.len() as f64;
    let _ = write!(
        h,
        "<h2>{label} of {of} (ms; the line is the target, {target:.0} ms)</h2><svg width=\"900\" height=\"{height:.0}\">"
    );
    for (i, m) in methods.iter().enumerate() {
        let y = 10.0 + 24.0 * i as f64;
        let w = 700.0 * get(m) / max;
        let color = if get(m) <= target { "#59a14f" } else { "#e15759" };
        let _ = write!(
            h,
            "<text x=\"4\" y=\"{:.0}\" font-size=\"12\">{}</text><rect x=\"120\" y=\"{y:.0}\" width=\"{w:.1}\" height=\"16\" fill=\"{color}\"/><text x=\"{:.0}\" y=\"{:.0}\" font-size=\"11\">{:.1}</text>",
            y + 12.0,
            m.method.name(),
            126.0 + w,
            y + 12.0,
            get(m)
        );
    }
    let tx = 120.0 + 700.0 * target / max;
    let _ = write!(
        h,
        "<line x1=\"{tx:.1}\" y1=\"4\" x2=\"{tx:.1}\" y2=\"{:.0}\" stroke=\"#333\" stroke-dasharray=\"4 3\"/></svg>",
        height - 4.0
    );
}
