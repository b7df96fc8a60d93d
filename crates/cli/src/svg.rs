//! A hand-made SVG chart of trust and health over time, with the bands shaded.

use std::fmt::Write;

use rapport_core::Timestamp;
use rapport_health::{HealthModel, Scores};

const W: f64 = 900.0;
const H: f64 = 420.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The chart for `account`: one line for trust, one for health, the green/yellow/red bands
/// shaded behind them, and grey dots where a score is grey (insufficient evidence).
pub(crate) fn chart(account: &str, line: &[(Timestamp, Scores)], model: &HealthModel) -> String {
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let (t0, t1) = match (line.first(), line.last()) {
        (Some(a), Some(b)) => (a.0, b.0),
        _ => (Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH),
    };
    let span = t1.days_since(t0).max(1.0);
    let x = |t: Timestamp| LEFT + plot_w * t.days_since(t0) / span;
    let y = |v: f64| TOP + plot_h * (1.0 - v.clamp(0.0, 100.0) / 100.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="28" font-size="16" font-weight="bold">Trust and health: {}</text>"#,
        esc(account)
    );
    let b = &model.bands;
    for (lo, hi, color, label) in [
        (b.green_from, 100.0, "#d9f2d9", "green"),
        (b.yellow_from, b.green_from, "#fff3c4", "yellow"),
        (0.0, b.yellow_from, "#f9d6d5", "red"),
    ] {
        let _ = writeln!(
            s,
            r#"<rect x="{LEFT}" y="{:.1}" width="{plot_w}" height="{:.1}" fill="{color}"><title>{label} band</title></rect>"#,
            y(hi),
            y(lo) - y(hi)
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#666">{label}</text>"##,
            LEFT + plot_w + 8.0,
            (y(hi) + y(lo)) / 2.0 + 4.0
        );
    }
    for v in [0.0, 25.0, 50.0, 75.0, 100.0] {
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#999" stroke-width="0.5"/>"##,
            LEFT + plot_w,
            y(v),
            y(v)
        );
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{v:.0}</text>"#, LEFT - 6.0, y(v) + 4.0);
    }
    let ticks = 6.min(line.len().max(1));
    for k in 0..ticks {
        let t = t0.add_days(span * k as f64 / (ticks.max(2) - 1) as f64);
        let date = t.to_string();
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x(t),
            TOP + plot_h + 18.0,
            esc(date.get(..10).unwrap_or(&date))
        );
    }
    for (name, color, pick) in [
        (
            "trust",
            "#1f5fbf",
            (|s: &Scores| (s.trust.score, s.trust.band)) as fn(&Scores) -> (f64, rapport_health::Band),
        ),
        ("health", "#222222", |s: &Scores| (s.health.score, s.health.band)),
    ] {
        let points: Vec<String> = line.iter().map(|(t, sc)| format!("{:.1},{:.1}", x(*t), y(pick(sc).0))).collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"><title>{name}</title></polyline>"#,
            points.join(" ")
        );
        for (t, sc) in line {
            let (v, band) = pick(sc);
            let fill = if band == rapport_health::Band::Grey { "#aaaaaa" } else { color };
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{fill}"><title>{name} {v:.1} ({}) at {t}</title></circle>"#,
                x(*t),
                y(v),
                band.name()
            );
        }
    }
    let ly = TOP + plot_h + 42.0;
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" x2="{:.1}" y1="{ly}" y2="{ly}" stroke="#1f5fbf" stroke-width="2"/><text x="{:.1}" y="{:.1}">trust</text>"##,
        LEFT + 24.0,
        LEFT + 30.0,
        ly + 4.0
    );
    let _ = writeln!(
        s,
        r##"<line x1="{:.1}" x2="{:.1}" y1="{ly}" y2="{ly}" stroke="#222222" stroke-width="2"/><text x="{:.1}" y="{:.1}">health</text>"##,
        LEFT + 90.0,
        LEFT + 114.0,
        LEFT + 120.0,
        ly + 4.0
    );
    let _ = writeln!(
        s,
        r##"<circle cx="{:.1}" cy="{ly}" r="3" fill="#aaaaaa"/><text x="{:.1}" y="{:.1}">grey: insufficient evidence</text>"##,
        LEFT + 190.0,
        LEFT + 198.0,
        ly + 4.0
    );
    s.push_str("</svg>\n");
    s
}
