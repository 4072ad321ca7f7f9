//! What the full-load bench prints: one line per slice while it runs, then each
//! interface's throughput and latency, the latency comparison with its intervals, the
//! missed cycles, and a last machine-readable line.

use crate::Args;
use crate::loads::Report;
use crate::measure::{Kind, Slice};
use openplc_benches::compare::{Comparison, Estimate, Value, compare};
use openplc_benches::histogram::{Histogram, show};
use shared_abi::stats::Stats;
use std::time::Duration;

pub struct Summary<'a> {
    pub args: &'a Args,
    pub cpu: usize,
    pub slices: &'a [Slice],
    pub interfaces: &'a [Report],
    pub before: &'a Stats,
    pub after: &'a Stats,
    pub run_for: Duration,
}

pub fn slice_line(s: &Slice) {
    let ct = s.ct.as_ref().map_or(String::new(), |c| {
        let at = s.distance_us.map_or(String::new(), |d| format!(" +{d:<3} us"));
        format!("  cyclictest{at} p99 {:>5} max {:>6}", show(c.quantile(0.99)), show(c.max()))
    });
    eprintln!(
        "slice {:<14} rt-core p99 {:>5} max {:>6} overruns {} (periods skipped {}){ct}{}",
        match s.kind {
            Kind::Alone => "rt-core alone",
            Kind::Beside => "both",
        },
        show(s.rt.quantile(0.99)),
        show(s.rt.max()),
        s.overruns,
        s.skipped,
        if s.slip_ms > 20.0 { format!("  (bench snapshot {:.0} ms late)", s.slip_ms) } else { String::new() }
    );
}

fn verdict(e: &Estimate, target: f64) -> &'static str {
    let num = |v: Value| match v {
        Value::Exact(x) | Value::AtLeast(x) | Value::AtMost(x) => Some(x),
        Value::Unknown => None,
    };
    match (num(e.low), num(e.high)) {
        (_, Some(hi)) if hi <= target && !matches!(e.high, Value::AtLeast(_)) => "met",
        (Some(lo), _) if lo > target && !matches!(e.low, Value::AtMost(_)) => "missed",
        _ => "undecided: the interval spans the target",
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.2}"))
}

pub fn print(s: &Summary) {
    let a = s.args;
    let alone: Vec<&Slice> = s.slices.iter().filter(|x| x.kind == Kind::Alone).collect();
    let beside: Vec<&Slice> = s.slices.iter().filter(|x| x.kind == Kind::Beside).collect();
    println!();
    println!(
        "full load for {:.0} s; measured {} slices of {} s in ABBA order ({} rt-core alone, {} with cyclictest beside it); \
         CPU {}, SCHED_FIFO {}, demo program at {} ms; the host is a shared 2-vCPU VM",
        s.run_for.as_secs_f64(),
        s.slices.len(),
        a.slice_seconds,
        alone.len(),
        beside.len(),
        s.cpu,
        a.priority,
        a.period_ms
    );
    println!();
    println!(
        "{:<30} {:>8} {:>14} {:>9} {:>9} {:>7}",
        "interface", "clients", "throughput/s", "p50 ms", "p99 ms", "errors"
    );
    for r in s.interfaces {
        println!(
            "{:<30} {:>8} {:>14.1} {:>9} {:>9} {:>7}",
            r.interface,
            r.clients,
            r.rate(),
            ms(r.p50_ms),
            ms(r.p99_ms),
            r.errors
        );
        if !r.note.is_empty() {
            println!("    {}", r.note);
        }
    }
    if a.https_connections > 0 {
        println!("    * {} keep-alive connections, each alternating the two paths", a.https_connections);
    }

    let pool = |hs: Vec<&Histogram>| Histogram::pooled(hs);
    let rt_alone = pool(alone.iter().map(|x| &x.rt).collect());
    let rt_beside = pool(beside.iter().map(|x| &x.rt).collect());
    let ct_beside = pool(beside.iter().filter_map(|x| x.ct.as_ref()).collect());
    println!();
    println!("wake-up latency, us {:<20} {:>9} {:>6} {:>6} {:>7} {:>7}", "", "samples", "p50", "p99", "p99.9", "max");
    for (name, h) in [
        ("rt-core alone (A)", &rt_alone),
        ("rt-core, cyclictest beside (B)", &rt_beside),
        ("cyclictest, rt-core beside (B)", &ct_beside),
    ] {
        if let Some(h) = h {
            println!(
                "{name:<40} {:>9} {:>6} {:>6} {:>7} {:>7}",
                h.samples(),
                show(h.quantile(0.5)),
                show(h.quantile(0.99)),
                show(h.quantile(0.999)),
                show(h.max())
            );
        }
    }

    let same_windows: Vec<(&Histogram, &Histogram)> =
        beside.iter().filter_map(|x| x.ct.as_ref().map(|ct| (&x.rt, ct))).collect();
    let c = compare(&same_windows);
    println!();
    println!("rt-core / cyclictest in the same windows (B), 95 % bootstrap intervals over {} windows:", c.pairs);
    print_comparison(&c, true);
    // ABBA: A and B slices come in adjacent pairs.
    let pairs_ab: Vec<(&Slice, &Slice)> = alone.iter().copied().zip(beside.iter().copied()).collect();
    let alternating: Vec<(&Histogram, &Histogram)> =
        pairs_ab.iter().filter_map(|(a, b)| b.ct.as_ref().map(|ct| (&a.rt, ct))).collect();
    let neighbour: Vec<(&Histogram, &Histogram)> = pairs_ab.iter().map(|(a, b)| (&b.rt, &a.rt)).collect();
    let alt = compare(&alternating);
    let nb = compare(&neighbour);
    println!("rt-core alone (A) / cyclictest (B), adjacent slices:");
    print_comparison(&alt, false);
    println!(
        "what cyclictest beside it costs rt-core, rt-core (B) / rt-core (A): p50 {} us, p99 {}, p99.9 {}",
        nb.p50_delta_us.show(0),
        nb.p99_ratio.show(2),
        nb.p999_ratio.show(2)
    );

    let overruns = s.after.overruns.saturating_sub(s.before.overruns);
    let skipped = s.after.skipped_periods.saturating_sub(s.before.skipped_periods);
    let scans = s.after.scan_count.saturating_sub(s.before.scan_count);
    let b_overruns: u64 = beside.iter().map(|x| x.overruns).sum();
    let late = |f: &dyn Fn(&Slice) -> Option<u64>| beside.iter().map(|x| f(x)).sum::<Option<u64>>();
    let rt_late = late(&|x| x.rt.at_least(x.rt.range_us()));
    let ct_late = late(&|x| x.ct.as_ref().and_then(|c| c.at_least(1000)));
    println!();
    println!(
        "missed cycles: {overruns} overruns ({skipped} periods skipped) in {scans} scans over the whole load; \
         target: none caused by the load"
    );
    println!(
        "  in the B windows: rt-core {} overruns, wake-ups >= 1 ms late: rt-core {}, cyclictest {} \
         (a late cyclictest wake-up in the same window is the host, not the load on rt-core)",
        b_overruns,
        rt_late.map_or("-".into(), |n| n.to_string()),
        ct_late.map_or("-".into(), |n| n.to_string())
    );
    if let Some(ct_late) = ct_late {
        // A host stall makes whichever tool's deadline it straddles late: per stall it is
        // chance which one, so compare the counts as two Poisson counts (about 2 sigma).
        let extra = b_overruns.saturating_sub(ct_late);
        let chance = 2.0 * ((b_overruns + ct_late) as f64).sqrt();
        if extra == 0 {
            println!(
                "  rt-core missed no more cycles than cyclictest woke a period late beside it: none attributable to the load"
            );
        } else if (extra as f64) <= chance {
            println!(
                "  rt-core missed {extra} more than cyclictest woke a period late: within chance (about {chance:.0})"
            );
        } else {
            println!(
                "  rt-core missed {extra} more than cyclictest woke a period late: beyond chance, the load's or rt-core's doing"
            );
        }
    }
    let slip = s.slices.iter().map(|x| x.slip_ms).fold(0.0, f64::max);
    if slip > 20.0 {
        println!("  the bench took a snapshot up to {slip:.0} ms late (it runs at normal priority under the load)");
    }

    let mut tokens = Vec::new();
    for r in s.interfaces {
        tokens.push(format!("{}_rps={:.1} {}_p99_ms={}", r.key, r.rate(), r.key, ms(r.p99_ms)));
    }
    if let Some(h) = &rt_beside {
        tokens.push(format!(
            "rt_p50_us={} rt_p99_us={} rt_p999_us={}",
            show(h.quantile(0.5)),
            show(h.quantile(0.99)),
            show(h.quantile(0.999))
        ));
    }
    if let Some(h) = &ct_beside {
        tokens.push(format!(
            "ct_p50_us={} ct_p99_us={} ct_p999_us={}",
            show(h.quantile(0.5)),
            show(h.quantile(0.99)),
            show(h.quantile(0.999))
        ));
    }
    tokens.push(c.tokens(""));
    tokens.push(format!("overruns={overruns} skipped_periods={skipped}"));
    println!("{}", tokens.join(" ").replace('≥', ">="));
}

fn print_comparison(c: &Comparison, with_targets: bool) {
    let t = |e: &Estimate, target: f64, unit: &str| {
        if with_targets { format!("(target <= {target}{unit}: {})", verdict(e, target)) } else { String::new() }
    };
    println!("  p50 difference  {} us   {}", c.p50_delta_us.show(0), t(&c.p50_delta_us, 1.0, " us"));
    println!("  p99 ratio       {}   {}", c.p99_ratio.show(2), t(&c.p99_ratio, 1.10, ""));
    println!("  p99.9 ratio     {}   {}", c.p999_ratio.show(2), t(&c.p999_ratio, 1.25, ""));
}
