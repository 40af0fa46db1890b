//! The page: plain HTML with inline CSS and inline SVG bar charts, no script and no
//! external resource, so it reads offline, prints, and mails as one file.

use std::fmt::Write as _;

use crm_proto::v1;

use super::{Band, Churn, CustomerBase, Figures};

/// Lifecycle and value-class values in reading order (others, from a later rule
/// version, follow in name order).
const LIFECYCLES: [&str; 5] = ["prospect", "new", "repeat", "dormant", "churned"];
const VALUE_CLASSES: [&str; 5] = ["high_value", "potential", "general", "lost", "unscored"];
const BANDS: [&str; 3] = ["low", "medium", "high"];

const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;\
color:#1d2733;margin:0;background:#f4f6f8}main{max-width:1040px;margin:0 auto;padding:24px}\
header{background:#1d3557;color:#fff;padding:20px 24px}header h1{margin:0 0 4px;font-size:22px}\
header p{margin:0;opacity:.85}section{background:#fff;border-radius:6px;padding:16px 20px;\
margin:0 0 18px;box-shadow:0 1px 2px rgba(0,0,0,.08)}h2{font-size:18px;margin:0 0 10px}\
h3{font-size:14px;margin:14px 0 6px;color:#415a77}table{border-collapse:collapse;margin:6px 0 10px}\
th,td{padding:3px 10px;border-bottom:1px solid #e3e7eb;text-align:left}td.n,th.n{text-align:right;\
font-variant-numeric:tabular-nums}.row{display:flex;flex-wrap:wrap;gap:24px}.note{color:#5c6b7a;\
font-size:12px}.kpi{display:inline-block;margin:0 28px 8px 0}.kpi b{display:block;font-size:20px}\
figure{margin:0 0 8px}svg text{font:12px system-ui,sans-serif;fill:#1d2733}";

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The inverse of [`esc`] (what a reader of the attributes needs).
pub(super) fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// 1234567 → "1,234,567".
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Minor units → "12,345.67 EUR" (two decimals: the reporting currencies' minor unit).
fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!(
        "{sign}{}.{:02} {}",
        count(abs / 100),
        abs % 100,
        esc(currency)
    )
}

/// Minor units held as a double (the churn model's CLV) → money, rounded.
#[allow(clippy::cast_possible_truncation)]
fn money_f(minor: f64, currency: &str) -> String {
    money(minor.round() as i64, currency)
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{:.1}%", v * 100.0))
}

/// A cell holding a named figure: `data-value` is the API's value unformatted.
fn fig(name: &str, value: &str, shown: &str) -> String {
    format!(
        "<td class=\"n\" data-figure=\"{}\" data-value=\"{}\">{shown}</td>",
        esc(name),
        esc(value)
    )
}

fn fig_count(name: &str, n: u64) -> String {
    fig(name, &n.to_string(), &count(n))
}

fn fig_rate(name: &str, v: Option<f64>) -> String {
    fig(name, &v.map(|v| v.to_string()).unwrap_or_default(), &pct(v))
}

fn fig_money(name: &str, minor: i64, currency: &str) -> String {
    fig(name, &minor.to_string(), &money(minor, currency))
}

fn fig_money_f(name: &str, minor: f64, currency: &str) -> String {
    fig(name, &minor.to_string(), &money_f(minor, currency))
}

fn fig_f(name: &str, v: f64, digits: usize) -> String {
    fig(name, &v.to_string(), &format!("{v:.digits$}"))
}

/// A horizontal bar chart in SVG: one bar per row, scaled to the largest absolute
/// value, negative bars to the left of the zero line.
#[allow(clippy::cast_precision_loss)]
fn bars(title: &str, rows: &[(String, f64, String)]) -> String {
    const LABEL: f64 = 130.0;
    const PLOT: f64 = 220.0;
    const ROW: f64 = 24.0;
    let max = rows.iter().map(|r| r.1).fold(0.0_f64, f64::max);
    let min = rows.iter().map(|r| r.1).fold(0.0_f64, f64::min);
    let span = if max - min > 0.0 { max - min } else { 1.0 };
    let zero = LABEL + PLOT * (-min / span);
    let height = ROW * rows.len() as f64 + 28.0;
    let mut svg = format!(
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" \
         role=\"img\" aria-label=\"{t}\"><text x=\"0\" y=\"14\" font-weight=\"bold\">{t}</text>",
        w = LABEL + PLOT + 110.0,
        t = esc(title)
    );
    for (i, (label, value, shown)) in rows.iter().enumerate() {
        let y = 24.0 + ROW * i as f64;
        let w = PLOT * value.abs() / span;
        let x = if *value < 0.0 { zero - w } else { zero };
        let fill = if *value < 0.0 { "#c1121f" } else { "#457b9d" };
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{ty}\">{l}</text><rect x=\"{x:.1}\" y=\"{y}\" width=\"{w:.1}\" \
             height=\"{h}\" fill=\"{fill}\"/><text x=\"{vx:.1}\" y=\"{ty}\">{s}</text>",
            ty = y + 15.0,
            l = esc(label),
            h = ROW - 6.0,
            vx = LABEL + PLOT + 8.0,
            s = shown
        );
    }
    let _ = write!(
        svg,
        "<line x1=\"{zero:.1}\" x2=\"{zero:.1}\" y1=\"22\" y2=\"{}\" stroke=\"#1d2733\"/></svg></figure>",
        height - 2.0
    );
    svg
}

/// Known keys first in their order, then any others in name order.
fn ordered<'a>(
    known: &[&'a str],
    counts: &'a std::collections::BTreeMap<String, u64>,
) -> Vec<&'a str> {
    let mut keys: Vec<&str> = known.to_vec();
    keys.extend(
        counts
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k)),
    );
    keys
}

fn label(key: &str) -> String {
    if key.is_empty() {
        "(none)".into()
    } else {
        key.replace('_', " ")
    }
}

/// The whole page.
#[must_use]
pub fn render(f: &Figures) -> String {
    let mut page = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width,initial-scale=1\"><title>CRM report as of {at}</title>\
         <style>{STYLE}</style></head><body><header><h1>CRM report</h1><p>As of {at} \
         &middot; read-model positions: customers {cp}, funnel {fp}{churn} &middot; every figure \
         from the query API (crm-analyst {v})</p></header><main>",
        at = f.as_of.format("%Y-%m-%d %H:%M UTC"),
        cp = f.customers.position,
        fp = f.funnel.position,
        churn = f
            .churn
            .as_ref()
            .map_or_else(String::new, |c| format!(", churn {}", c.position)),
        v = env!("CARGO_PKG_VERSION"),
    );
    page.push_str(&customers(&f.customers));
    page.push_str(&funnel(&f.funnel));
    page.push_str(&forecast(f));
    page.push_str(&leads(&f.leads));
    page.push_str(&campaigns(&f.campaigns));
    page.push_str(&f.churn.as_ref().map_or_else(
        || {
            "<section id=\"churn\"><h2>Churn risk</h2><p>No churn model is served yet \
             (ChurnService.FitModel with serve).</p></section>"
                .to_owned()
        },
        churn,
    ));
    page.push_str("</main></body></html>\n");
    page
}

fn customers(c: &CustomerBase) -> String {
    let lifecycles = ordered(&LIFECYCLES, &c.lifecycle);
    let classes = ordered(&VALUE_CLASSES, &c.value_class);
    let get = |m: &std::collections::BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    let chart = |title: &str, keys: &[&str], m| {
        let rows: Vec<_> = keys
            .iter()
            .map(|k| (label(k), get(m, k) as f64, count(get(m, k))))
            .collect();
        bars(title, &rows)
    };
    let mut s = format!(
        "<section id=\"customers\"><h2>Customer base</h2><table><tr><th>customers</th>{}</tr></table>\
         <div class=\"row\">{}{}</div><h3>Lifecycle by value class</h3><table><tr><th></th>",
        fig_count("customers.total", c.total),
        chart("By lifecycle", &lifecycles, &c.lifecycle),
        chart("By value class", &classes, &c.value_class),
    );
    for v in &classes {
        let _ = write!(s, "<th class=\"n\">{}</th>", esc(&label(v)));
    }
    s.push_str("<th class=\"n\">all</th></tr>");
    for l in &lifecycles {
        let _ = write!(s, "<tr><th>{}</th>", esc(&label(l)));
        for v in &classes {
            let n = c
                .matrix
                .get(&((*l).to_owned(), (*v).to_owned()))
                .copied()
                .unwrap_or(0);
            s.push_str(&fig_count(&format!("customers.matrix.{l}.{v}"), n));
        }
        s.push_str(&fig_count(
            &format!("customers.lifecycle.{l}"),
            get(&c.lifecycle, l),
        ));
        s.push_str("</tr>");
    }
    s.push_str("<tr><th>all</th>");
    for v in &classes {
        s.push_str(&fig_count(
            &format!("customers.value_class.{v}"),
            get(&c.value_class, v),
        ));
    }
    s.push_str("<td></td></tr></table><h3>RFM segments</h3><table><tr><th>segment</th><th class=\"n\">customers</th></tr>");
    for (segment, n) in &c.segment {
        let _ = write!(
            s,
            "<tr><td>{}</td>{}</tr>",
            esc(&label(segment)),
            fig_count(&format!("customers.segment.{segment}"), *n)
        );
    }
    s.push_str("</table></section>");
    s
}

fn funnel(f: &v1::PipelineFunnelReply) -> String {
    let rows: Vec<_> = f
        .stages
        .iter()
        .map(|st| (label(&st.stage), st.reached as f64, count(st.reached)))
        .collect();
    let mut s = format!(
        "<section id=\"funnel\"><h2>Pipeline funnel: {}</h2><table><tr><th>deals</th><th>open</th>\
         <th>won</th><th>lost</th><th>win rate</th><th>median cycle</th></tr><tr>{}{}{}{}{}{}</tr></table>{}\
         <table><tr><th>stage</th><th class=\"n\">reached</th><th class=\"n\">from previous</th>\
         <th class=\"n\">from first</th><th class=\"n\">open now</th><th class=\"n\">stale</th>\
         <th class=\"n\">median days in stage</th></tr>",
        esc(&f.pipeline),
        fig_count("funnel.deals", f.deals),
        fig_count("funnel.open", f.open),
        fig_count("funnel.won", f.won),
        fig_count("funnel.lost", f.lost),
        fig_rate("funnel.win_rate", f.win_rate),
        f.cycle.as_ref().map_or_else(
            || "<td></td>".into(),
            |c| fig(
                "funnel.cycle.median_days",
                &c.median_days.to_string(),
                &format!("{:.1} d", c.median_days)
            )
        ),
        bars("Deals that reached each stage", &rows),
    );
    for st in &f.stages {
        let k = format!("funnel.stage.{}", st.stage);
        let median = st.cumulative.as_ref().map_or(0.0, |d| d.median_days);
        let _ = write!(
            s,
            "<tr><td>{}</td>{}{}{}{}{}{}</tr>",
            esc(&label(&st.stage)),
            fig_count(&format!("{k}.reached"), st.reached),
            fig_rate(
                &format!("{k}.conversion_from_previous"),
                st.conversion_from_previous
            ),
            fig_rate(
                &format!("{k}.conversion_from_first"),
                st.conversion_from_first
            ),
            fig_count(&format!("{k}.open"), st.open),
            fig_count(&format!("{k}.stale"), st.stale),
            fig(
                &format!("{k}.median_days"),
                &median.to_string(),
                &format!("{median:.1}")
            ),
        );
    }
    s.push_str("</table><div class=\"row\"><div><h3>Won amount</h3><table>");
    for a in &f.won_amount {
        let _ = write!(
            s,
            "<tr><td>{}</td>{}</tr>",
            esc(&a.currency),
            fig_money(
                &format!("funnel.won_amount.{}", a.currency),
                a.minor,
                &a.currency
            )
        );
    }
    s.push_str("</table></div><div><h3>Loss reasons</h3><table>");
    for r in &f.loss_reasons {
        let _ = write!(
            s,
            "<tr><td>{}</td>{}</tr>",
            esc(&label(&r.reason)),
            fig_count(&format!("funnel.loss.{}", r.reason), r.deals)
        );
    }
    s.push_str("</table></div></div></section>");
    s
}

fn forecast(f: &Figures) -> String {
    let q = &f.quarter;
    let mut s = format!(
        "<section id=\"forecast\"><h2>Forecast for {} (expected close {} to {})</h2>\
         <p class=\"note\">Cumulative categories: commit includes closed, best case includes \
         commit, pipeline includes best case; weighted = open amount x probability frozen at \
         stage entry.</p><table><tr><th>category</th><th>currency</th><th class=\"n\">closed</th>\
         <th class=\"n\">commit</th><th class=\"n\">best case</th><th class=\"n\">pipeline</th>\
         <th class=\"n\">weighted</th></tr>",
        esc(&q.label),
        q.start.format("%Y-%m-%d"),
        (q.end - chrono::Duration::days(1)).format("%Y-%m-%d"),
    );
    let mut chart = Vec::new();
    for g in &f.forecast.groups {
        for r in &g.rollups {
            let k = format!("forecast.{}.{}", g.group, r.currency);
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td>{}{}{}{}{}</tr>",
                esc(&label(&g.group)),
                esc(&r.currency),
                fig_money(&format!("{k}.closed"), r.closed, &r.currency),
                fig_money(&format!("{k}.commit"), r.commit, &r.currency),
                fig_money(&format!("{k}.best_case"), r.best_case, &r.currency),
                fig_money(&format!("{k}.pipeline"), r.pipeline, &r.currency),
                fig_money(&format!("{k}.weighted"), r.weighted, &r.currency),
            );
            if r.currency == chart_currency(&f.forecast) {
                chart.push((
                    format!("{} ({})", label(&g.group), r.currency),
                    r.pipeline as f64 / 100.0,
                    money(r.pipeline, &r.currency),
                ));
            }
        }
    }
    let _ = write!(
        s,
        "</table>{}</section>",
        bars("Pipeline by forecast category", &chart)
    );
    s
}

/// The currency of the forecast's first roll-up: the chart shows one currency.
fn chart_currency(f: &v1::ForecastReply) -> &str {
    f.groups
        .iter()
        .find_map(|g| g.rollups.first())
        .map_or("", |r| r.currency.as_str())
}

fn leads(l: &v1::LeadFunnelReply) -> String {
    let rows: Vec<_> = l
        .groups
        .iter()
        .map(|g| {
            (
                label(&g.group),
                g.conversion_rate.unwrap_or(0.0) * 100.0,
                pct(g.conversion_rate),
            )
        })
        .collect();
    let mut s = format!(
        "<section id=\"leads\"><h2>Lead funnel by source</h2>{}<table><tr><th>source</th>\
         <th class=\"n\">captured</th><th class=\"n\">contacted</th><th class=\"n\">qualified</th>\
         <th class=\"n\">converted</th><th class=\"n\">disqualified</th><th class=\"n\">open</th>\
         <th class=\"n\">conversion</th><th class=\"n\">median days to convert</th></tr>",
        bars("Conversion rate (converted / captured)", &rows)
    );
    for g in &l.groups {
        let k = format!("leads.{}", g.group);
        let days = g
            .captured_to_converted
            .as_ref()
            .map_or(0.0, |d| d.median_days);
        let _ = write!(
            s,
            "<tr><td>{}</td>{}{}{}{}{}{}{}{}</tr>",
            esc(&label(&g.group)),
            fig_count(&format!("{k}.captured"), g.captured),
            fig_count(&format!("{k}.contacted"), g.contacted),
            fig_count(&format!("{k}.qualified"), g.qualified),
            fig_count(&format!("{k}.converted"), g.converted),
            fig_count(&format!("{k}.disqualified"), g.disqualified),
            fig_count(&format!("{k}.open"), g.open),
            fig_rate(&format!("{k}.conversion_rate"), g.conversion_rate),
            fig(
                &format!("{k}.median_days_to_convert"),
                &days.to_string(),
                &format!("{days:.1}")
            ),
        );
    }
    s.push_str("</table></section>");
    s
}

fn campaigns(c: &v1::CampaignPerformanceReply) -> String {
    let rows: Vec<_> = c
        .campaigns
        .iter()
        .map(|x| (x.name.clone(), x.roi.unwrap_or(0.0) * 100.0, pct(x.roi)))
        .collect();
    let mut s = format!(
        "<section id=\"campaigns\"><h2>Campaigns ranked by ROI</h2>{}<table><tr><th class=\"n\">rank</th>\
         <th>campaign</th><th>channel</th><th class=\"n\">recipients</th><th class=\"n\">response rate</th>\
         <th class=\"n\">leads</th><th class=\"n\">won deals</th><th class=\"n\">cost</th>\
         <th class=\"n\">ROI</th></tr>",
        bars("ROI = (revenue - cost) / cost", &rows)
    );
    for x in &c.campaigns {
        let k = format!("campaign.{}", x.campaign_id);
        let cost = x.cost.clone().unwrap_or_default();
        let _ = write!(
            s,
            "<tr>{}<td>{}</td><td>{}</td>{}{}{}{}{}{}</tr>",
            fig_count(&format!("{k}.rank"), u64::from(x.rank)),
            esc(&x.name),
            esc(&x.channel),
            fig_count(&format!("{k}.recipients"), x.recipients),
            fig_rate(&format!("{k}.response_rate"), x.response_rate),
            fig_count(&format!("{k}.leads"), x.leads),
            fig_count(&format!("{k}.won"), x.won),
            fig_money(&format!("{k}.cost"), cost.minor, &cost.currency),
            fig_rate(&format!("{k}.roi"), x.roi),
        );
    }
    s.push_str("</table></section>");
    s
}

fn churn(c: &Churn) -> String {
    let m = &c.model;
    let cur = &c.currency;
    let band_rows = |value: fn(&Band) -> f64, shown: &dyn Fn(&Band) -> String| -> Vec<_> {
        BANDS
            .iter()
            .zip(&c.bands)
            .map(|(name, b)| ((*name).to_owned(), value(b), shown(b)))
            .collect()
    };
    let mut s = format!(
        "<section id=\"churn\"><h2>Churn risk and lifetime value</h2><p class=\"note\">Served model \
         {} (BG/NBD and Gamma-Gamma, calibration end {}, {} customers, time unit {}); CLV over 12 \
         months; value at risk = CLV x (1 - P(alive)).</p><div class=\"row\">{}{}</div><table><tr>\
         <th>band</th><th class=\"n\">customers</th><th class=\"n\">CLV</th><th class=\"n\">value at risk</th></tr>",
        esc(&m.model_id),
        m.calibration_end
            .as_ref()
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
            .map_or_else(String::new, |t| t.format("%Y-%m-%d").to_string()),
        count(m.customers),
        esc(&m.time_unit),
        bars(
            "Customers by risk band",
            &band_rows(|b| b.customers as f64, &|b| count(b.customers))
        ),
        bars(
            "Value at risk by band",
            &band_rows(|b| b.value_at_risk, &|b| money_f(b.value_at_risk, cur))
        ),
    );
    for (name, b) in BANDS.iter().zip(&c.bands) {
        let k = format!("churn.band.{name}");
        let _ = write!(
            s,
            "<tr><td>{name}</td>{}{}{}</tr>",
            fig_count(&format!("{k}.customers"), b.customers),
            fig_money_f(&format!("{k}.clv"), b.clv, cur),
            fig_money_f(&format!("{k}.value_at_risk"), b.value_at_risk, cur),
        );
    }
    let bg = m.bgnbd.unwrap_or_default();
    let gg = m.gamma_gamma.unwrap_or_default();
    let _ = write!(
        s,
        "</table><h3>Model parameters</h3><table><tr><th>r</th><th>alpha</th><th>a</th><th>b</th>\
         <th>log-likelihood</th><th>p</th><th>q</th><th>gamma</th></tr><tr>{}{}{}{}{}{}{}{}</tr></table>\
         <h3>Highest value at risk</h3><table><tr><th>customer</th><th class=\"n\">P(alive)</th>\
         <th class=\"n\">CLV</th><th class=\"n\">value at risk</th><th class=\"n\">risk</th><th>band</th></tr>",
        fig_f("churn.model.r", bg.r, 4),
        fig_f("churn.model.alpha", bg.alpha, 4),
        fig_f("churn.model.a", bg.a, 4),
        fig_f("churn.model.b", bg.b, 4),
        fig_f("churn.model.log_likelihood", m.log_likelihood, 2),
        fig_f("churn.model.p", gg.p, 4),
        fig_f("churn.model.q", gg.q, 4),
        fig_f("churn.model.gamma", gg.gamma, 4),
    );
    for (i, x) in c.top.iter().enumerate() {
        let k = format!("churn.top.{}", i + 1);
        let _ = write!(
            s,
            "<tr><td data-figure=\"{k}.customer_id\" data-value=\"{id}\">{id}</td>{}{}{}{}<td>{}</td></tr>",
            fig_rate(&format!("{k}.p_alive"), Some(x.p_alive)),
            fig_money_f(&format!("{k}.clv"), x.clv, cur),
            fig_money_f(&format!("{k}.value_at_risk"), x.value_at_risk, cur),
            fig_f(&format!("{k}.risk_score"), x.risk_score, 3),
            BANDS[match x.band() {
                v1::RiskBand::High => 2,
                v1::RiskBand::Medium => 1,
                v1::RiskBand::Low | v1::RiskBand::Unspecified => 0,
            }],
            id = esc(&x.customer_id),
        );
    }
    s.push_str("</table></section>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_money_has_two_decimals() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(money(-123_456, "EUR"), "-1,234.56 EUR");
        assert_eq!(money(5, "EUR"), "0.05 EUR");
        assert_eq!(money_f(1999.6, "EUR"), "20.00 EUR");
    }

    #[test]
    fn text_is_escaped_and_read_back() {
        let s = "<b>\"Tom & Jerry's\"</b>";
        assert_eq!(
            esc(s),
            "&lt;b&gt;&quot;Tom &amp; Jerry&#39;s&quot;&lt;/b&gt;"
        );
        assert_eq!(unescape(&esc(s)), s);
    }

    #[test]
    fn negative_bars_go_left_of_zero() {
        let svg = bars(
            "t",
            &[
                ("a".into(), 1.0, "1".into()),
                ("b".into(), -1.0, "-1".into()),
            ],
        );
        // Zero sits mid-plot; the negative bar ends there and is red.
        assert!(svg.contains("x1=\"240.0\""), "{svg}");
        assert!(
            svg.contains("<rect x=\"130.0\" y=\"48\" width=\"110.0\""),
            "{svg}"
        );
        assert!(svg.contains("#c1121f"));
    }
}
