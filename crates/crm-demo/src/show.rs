//! What the demo shows: a generated business ingested through the bulk API, then what the
//! read models say, an analyst's redacted view, consent at a send, a blue/green rebuild,
//! and a stray message set aside with the quarantine.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use crm_datagen::{DAY, Params, generate, ingest};
use crm_proto::v1::{
    self, admin_service_client::AdminServiceClient, query_service_client::QueryServiceClient,
};
use tonic::Request;
use tonic::transport::Channel;

use crate::Cli;

pub(crate) fn authed<T>(msg: T, token: &str) -> anyhow::Result<Request<T>> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(r)
}

fn consistency(position: u64) -> Option<v1::Consistency> {
    Some(v1::Consistency {
        min_position: position,
    })
}

fn date(t: Option<&prost_types::Timestamp>) -> String {
    let Some(t) = t else { return "-".into() };
    // Civil from days (Howard Hinnant's algorithm).
    let z = t.seconds.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn eur(m: &[v1::Money]) -> String {
    let parts: Vec<String> = m
        .iter()
        .map(|m| format!("{:.2} {}", m.minor as f64 / 100.0, m.currency))
        .collect();
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join(", ")
    }
}

pub(crate) async fn show(
    cli: &Cli,
    channel: Channel,
    import_token: &str,
    read_token: &str,
    analyst_token: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    // A business whose history ends today (midnight UTC).
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros();
    let today = i64::try_from(now)? / DAY * DAY;
    let mut params = Params::new(cli.seed, cli.customers);
    params.days = cli.days;
    params.start = today - i64::from(cli.days) * DAY;

    println!("== Data");
    let started = Instant::now();
    let data = std::sync::Arc::new(generate(&params)?);
    let s = &data.summary;
    println!(
        "generated a {}-day B2C business in {:.1}s: {} customers, {} orders, {} returns, {} interactions, {} tickets, {} opportunities, {} leads, {} campaigns with {} responses, {} relationships: {} commands",
        params.days,
        started.elapsed().as_secs_f64(),
        s.customers,
        s.orders,
        s.returns,
        s.interactions,
        s.tickets,
        s.opportunities,
        s.leads,
        s.campaigns,
        s.campaign_responses,
        s.relationships,
        s.commands
    );

    let bar = indicatif::ProgressBar::new(s.commands);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "ingest {bar:40} {pos}/{len} commands, {per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let requests = std::sync::Arc::clone(&data)
        .shared_requests()
        .map(Ok::<_, String>);
    let report = ingest::ingest(channel.clone(), import_token, requests, |n| {
        bar.set_position(n);
    })
    .await?;
    bar.finish_and_clear();
    #[allow(clippy::cast_precision_loss)]
    let rate = report.ok as f64 / report.elapsed.as_secs_f64().max(1e-9);
    println!(
        "ingested {} commands through the bulk API in {:.1}s ({rate:.0} commands/s): {} accepted ({} already present), {} refused",
        report.sent,
        report.elapsed.as_secs_f64(),
        report.ok,
        report.repeated,
        report.failed
    );
    for f in report.failures.iter().take(5) {
        println!("  refused #{}: {}", f.sequence, f.message);
    }
    if report.failed > 0 {
        bail!("{} commands were refused", report.failed);
    }

    // Read your writes: every query below waits for the last position.
    let waited = Instant::now();
    let mut q = QueryServiceClient::new(channel.clone());
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let page = q
            .list_customers(authed(
                v1::ListCustomersRequest {
                    page_size: 1000,
                    page_token: token,
                    sort: v1::CustomerSort::Value as i32,
                    consistency: consistency(report.max_position),
                    ..Default::default()
                },
                read_token,
            )?)
            .await?
            .into_inner();
        if items.is_empty() {
            println!(
                "\n== Read models: caught up with position {} ({:.1}s after the last command was acknowledged)",
                page.read.as_ref().map_or(0, |r| r.position),
                waited.elapsed().as_secs_f64()
            );
        }
        items.extend(page.customers);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }

    println!(
        "\n== The customer base today: {} customers with orders ({} registered, never ordered)",
        items.len(),
        data.summary.customers.saturating_sub(items.len() as u64)
    );
    let mut by: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut lifecycles: BTreeMap<String, usize> = BTreeMap::new();
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    for c in &items {
        let cl = c.classification.clone().unwrap_or_default();
        *by.entry((cl.lifecycle.clone(), cl.value_class.clone()))
            .or_default() += 1;
        *lifecycles.entry(cl.lifecycle).or_default() += 1;
        *classes.entry(cl.value_class).or_default() += 1;
    }
    let class_names: Vec<&String> = classes.keys().collect();
    print!("{:<12}", "lifecycle");
    for c in &class_names {
        print!("{c:>12}");
    }
    println!("{:>10}", "total");
    for (l, total) in &lifecycles {
        print!("{l:<12}");
        for c in &class_names {
            let n = by.get(&(l.clone(), (*c).clone())).copied().unwrap_or(0);
            print!("{n:>12}");
        }
        println!("{total:>10}");
    }

    println!("\n== Most valuable customers (net revenue)");
    println!(
        "{:<24} {:>6} {:>11} {:<10} {:<11} {:<10}",
        "customer", "orders", "last order", "lifecycle", "value class", "segment"
    );
    for c in items.iter().take(5) {
        let cl = c.classification.clone().unwrap_or_default();
        println!(
            "{:<24} {:>6} {:>11} {:<10} {:<11} {:<10}",
            c.display_name,
            c.orders,
            date(c.last_order_at.as_ref()),
            cl.lifecycle,
            cl.value_class,
            cl.segment
        );
    }

    // Three customers worth a look: the most valuable, a dormant or churned one, and one
    // with the most service history.
    let mut picks = Vec::new();
    if let Some(top) = items.first() {
        picks.push(("the most valuable customer", top.customer_id.clone()));
    }
    if let Some(lost) = items.iter().find(|c| {
        c.classification
            .as_ref()
            .is_some_and(|cl| cl.lifecycle == "churned" && c.orders >= 3)
    }) {
        picks.push((
            "a churned customer who used to buy",
            lost.customer_id.clone(),
        ));
    }
    let from_leads = data.truth.iter().find(|t| t.came_from_lead && t.orders > 0);
    if let Some(t) = from_leads {
        picks.push(("a customer won through a lead", t.customer_id.clone()));
    }
    let picked: Vec<String> = picks.iter().map(|(_, id)| id.clone()).collect();
    for (i, (why, id)) in picks.into_iter().enumerate() {
        let v = q
            .get_customer360(authed(
                v1::GetCustomer360Request {
                    customer_id: id.clone(),
                    consistency: consistency(report.max_position),
                    ..Default::default()
                },
                read_token,
            )?)
            .await?
            .into_inner();
        print_360(why, &v);
        let latest = |token: &str| {
            authed(
                v1::GetTimelineRequest {
                    customer_id: id.clone(),
                    newest_first: true,
                    page_size: 5,
                    consistency: consistency(report.max_position),
                    ..Default::default()
                },
                token,
            )
        };
        let timeline = q.get_timeline(latest(read_token)?).await?.into_inner();
        println!("  latest events:");
        print_entries(&timeline.entries);
        // The first customer's events as an analyst (no pii.read) sees them.
        if let (0, Some(analyst)) = (i, analyst_token) {
            let redacted = q.get_timeline(latest(analyst)?).await?.into_inner();
            println!("  the same, as an analyst sees them (no personal data):");
            print_entries(&redacted.entries);
        }
    }
    crate::funnel::show(channel.clone(), read_token, report.max_position).await?;
    crate::marketing::show(channel.clone(), read_token, report.max_position).await?;
    crate::churn::show(channel.clone(), read_token, report.max_position, cli).await?;
    consent_at_the_send(channel.clone(), read_token, &picked).await?;
    rebuild(channel, read_token).await?;
    Ok(picked)
}

/// A flash-sale email to the customers shown above: the send reaches those whose email
/// consent holds now and reports the others, with the reason.
async fn consent_at_the_send(
    channel: Channel,
    token: &str,
    recipients: &[String],
) -> anyhow::Result<()> {
    use crm_proto::v1::command_service_client::CommandServiceClient;
    println!(
        "
== Consent at the send (CommandService.SendCampaign)"
    );
    let mut commands = CommandServiceClient::new(channel.clone());
    let campaign = commands
        .create_campaign(authed(
            v1::CreateCampaignRequest {
                name: "Demo flash sale".into(),
                channel: v1::Channel::Email.into(),
                segment: "the customers above".into(),
                ..Default::default()
            },
            token,
        )?)
        .await?
        .into_inner();
    let sent = commands
        .send_campaign(authed(
            v1::SendCampaignRequest {
                campaign_id: campaign.aggregate_id,
                recipients: recipients.to_vec(),
                ..Default::default()
            },
            token,
        )?)
        .await;
    match sent {
        Ok(reply) => {
            let reply = reply.into_inner();
            println!(
                "  an email to {} customers: sent to {}, left out {}",
                recipients.len(),
                recipients.len() - reply.skipped_recipients.len(),
                if reply.skipped_recipients.is_empty() {
                    "none".to_owned()
                } else {
                    reply
                        .skipped_recipients
                        .iter()
                        .map(|s| format!("{} ({})", s.customer_id, s.reason))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
        }
        Err(status) => println!(
            "  an email to {} customers: refused: {}",
            recipients.len(),
            status.message()
        ),
    }
    Ok(())
}

fn print_entries(entries: &[v1::TimelineEntry]) {
    for e in entries {
        println!(
            "    {} {:<26} {}",
            date(e.occurred_at.as_ref()),
            e.event_type,
            e.summary
        );
    }
}

/// Who may use the embedded nats-server: the service's two users, by key.
pub(crate) fn print_nats_users(nats_dir: &std::path::Path) {
    let mut keys: Vec<String> = std::fs::read_dir(nats_dir.join("users"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    let conf = std::fs::read_to_string(nats_dir.join("nats.conf")).unwrap_or_default();
    println!(
        "  its embedded nats-server admits {} NATS user(s), by key ({} in {}), and nobody else",
        conf.matches("nkey:").count(),
        keys.join(", "),
        nats_dir.join("users").display()
    );
}

fn print_360(why: &str, v: &v1::Customer360) {
    let p = v.profile.clone().unwrap_or_default();
    let cl = v.classification.clone().unwrap_or_default();
    println!(
        "\n== 360° view: {why}\n  {} {} <{}>, {}, registered {} by {}",
        p.given_name,
        p.family_name,
        p.emails.first().cloned().unwrap_or_default(),
        p.country,
        date(v.registered_at.as_ref()),
        v.registered_by
    );
    if let Some(o) = &v.origin_lead {
        println!(
            "  came from a {} lead captured {}",
            o.source,
            date(o.captured_at.as_ref())
        );
    }
    let consents: Vec<String> = v
        .consent
        .iter()
        .map(|c| {
            format!(
                "{} {} (since {})",
                c.channel,
                if c.granted { "yes" } else { "no" },
                date(c.changed_at.as_ref())
            )
        })
        .collect();
    println!(
        "  consent: {}; tags: {}",
        if consents.is_empty() {
            "none".into()
        } else {
            consents.join(", ")
        },
        if v.tags.is_empty() {
            "none".into()
        } else {
            v.tags.join(", ")
        }
    );
    println!(
        "  lifecycle {}, value class {} (RFM {}-{}-{}, segment {}), {} days since the last order",
        cl.lifecycle,
        cl.value_class,
        cl.recency_score,
        cl.frequency_score,
        cl.monetary_score,
        cl.segment,
        cl.days_since_last_order
            .map_or_else(|| "-".into(), |d| d.to_string())
    );
    if let Some(c) = &v.commerce {
        let amounts: Vec<String> = c
            .amounts
            .iter()
            .map(|a| {
                format!(
                    "revenue {:.2} {} (average {:.2}, refunded {:.2})",
                    a.revenue_minor as f64 / 100.0,
                    a.currency,
                    a.average_order_minor as f64 / 100.0,
                    a.refunded_minor as f64 / 100.0
                )
            })
            .collect();
        let top: Vec<&str> = c
            .top_categories
            .iter()
            .take(3)
            .map(|t| t.category.as_str())
            .collect();
        println!(
            "  commerce: {} orders ({} repeat, {} returns) from {} to {}, {}; top categories {}",
            c.orders,
            c.repeat_orders,
            c.returns,
            date(c.first_order_at.as_ref()),
            date(c.last_order_at.as_ref()),
            amounts.join("; "),
            top.join(", ")
        );
    }
    if let Some(e) = &v.engagement {
        println!(
            "  engagement: {} interactions in the last 90 days ({} the 90 before), trend {:+} over 30 days, on {}",
            e.interactions_last_90d,
            e.interactions_previous_90d,
            e.trend_30d,
            e.channels
                .iter()
                .map(|c| c.channel.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(s) = &v.sales {
        println!(
            "  sales: {} open (weighted pipeline {}), {} won ({}), {} lost",
            s.open,
            eur(&s.weighted_pipeline),
            s.won,
            eur(&s.won_amount),
            s.lost
        );
    }
    if let Some(m) = &v.marketing {
        println!(
            "  marketing: {} campaigns received, {} answered, last response {}, attributed revenue {}",
            m.campaigns_received,
            m.campaigns_responded,
            if m.last_response.is_empty() {
                "-"
            } else {
                &m.last_response
            },
            eur(&m.attributed_revenue)
        );
        if m.campaigns_skipped > 0 || m.campaigns_received_without_consent > 0 {
            println!(
                "  consent at sends: left out of {} send(s) for lack of consent; {} received without it (sent before the check)",
                m.campaigns_skipped, m.campaigns_received_without_consent
            );
        }
    }
    if let Some(s) = &v.service {
        println!(
            "  service: {} tickets, {} open, {} SLA breaches, median first response {}, average CSAT {}",
            s.tickets.len(),
            s.open_tickets,
            s.first_response_breaches + s.resolution_breaches,
            s.median_first_response_mins
                .map_or_else(|| "-".into(), |m| format!("{m:.0} min")),
            s.average_csat
                .map_or_else(|| "-".into(), |c| format!("{c:.1}"))
        );
    }
}

pub(crate) fn build_state(b: &v1::BuildInfo) -> &'static str {
    match v1::BuildState::try_from(b.state).unwrap_or_default() {
        v1::BuildState::Live => "live",
        v1::BuildState::Frozen => "frozen",
        v1::BuildState::Building => "building",
        v1::BuildState::CaughtUp => "caught up",
        v1::BuildState::Unspecified => "?",
    }
}

/// The read side's projections, then a blue/green rebuild of the 360 model while a client
/// keeps querying: the live build answers until the new one has caught up.
async fn rebuild(channel: Channel, token: &str) -> anyhow::Result<()> {
    let mut admin = AdminServiceClient::new(channel.clone());
    let mut q = QueryServiceClient::new(channel);
    let list = |admin: &mut AdminServiceClient<Channel>| {
        let mut admin = admin.clone();
        let request = authed(v1::ListProjectionsRequest {}, token);
        async move { anyhow::Ok(admin.list_projections(request?).await?.into_inner()) }
    };
    println!(
        "
== Projections (AdminService.ListProjections)"
    );
    for p in list(&mut admin).await?.projections {
        for b in &p.builds {
            println!(
                "  {:<12} v{} {:<10} build {:<16} at position {} of {}",
                p.name,
                p.version,
                build_state(b),
                b.tree,
                b.checkpoint,
                b.head
            );
        }
    }
    let started = Instant::now();
    let reply = admin
        .rebuild_projection(authed(
            v1::RebuildProjectionRequest {
                name: "customer360".into(),
            },
            token,
        )?)
        .await?
        .into_inner();
    let new_tree = reply.build.map(|b| b.tree).unwrap_or_default();
    println!("  rebuild of customer360 requested: building {new_tree} beside the live build");
    let (mut queries, mut positions) = (0u64, (u64::MAX, 0u64));
    loop {
        // Queries keep being answered by the live build meanwhile.
        let page = q
            .list_customers(authed(
                v1::ListCustomersRequest {
                    page_size: 1,
                    ..Default::default()
                },
                token,
            )?)
            .await?
            .into_inner();
        let at = page.read.map_or(0, |r| r.position);
        queries += 1;
        positions = (positions.0.min(at), positions.1.max(at));
        let status = list(&mut admin).await?;
        let c360 = status.projections.iter().find(|p| p.name == "customer360");
        let live = c360.and_then(|p| p.builds.first());
        if let Some(b) = live.filter(|b| b.tree == new_tree && build_state(b) == "live") {
            #[allow(clippy::cast_precision_loss)]
            let rate = b.checkpoint as f64 / started.elapsed().as_secs_f64().max(1e-9);
            println!(
                "  {new_tree} caught up and is now served: {} messages in {:.1}s ({rate:.0} messages/s); {queries} queries answered meanwhile at positions {}..{}",
                b.checkpoint,
                started.elapsed().as_secs_f64(),
                positions.0,
                positions.1
            );
            println!(
                "  its fold worked on a write-back cache: {} write-backs of {} keys in all, {:.1} MiB cached, {:.1}% of the fold's reads answered from memory",
                b.write_backs,
                b.write_back_keys,
                mib(b.cache_bytes),
                b.cache_hit_ratio * 100.0
            );
            return Ok(());
        }
        if started.elapsed() > std::time::Duration::from_secs(600) {
            bail!("the rebuild did not finish within 10 minutes");
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[allow(clippy::cast_precision_loss)]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}
