//! Orders and returns: lines, totals in one currency, and what a return may refund.

use super::*;

/// Decides [`Command::PlaceOrder`].
pub(super) fn place_order(world: &World, c: &PlaceOrder) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    check.key("sales_channel", &c.sales_channel, SHORT_MAX);
    if c.lines.is_empty() {
        check.fail("lines", "required", "an order needs at least one line");
    }
    check.list_len("lines", c.lines.len(), ORDER_LINES_MAX);
    let mut subtotal: i128 = 0;
    for (i, l) in c.lines.iter().enumerate() {
        check.required(&format!("lines[{i}].sku"), &l.sku, SHORT_MAX);
        check.text(&format!("lines[{i}].category"), &l.category, SHORT_MAX);
        if l.quantity == 0 {
            check.fail(
                format!("lines[{i}].quantity"),
                "range",
                "must be at least 1",
            );
        }
        check.amount(
            &format!("lines[{i}].unit_price_minor"),
            l.unit_price_minor,
            true,
        );
        subtotal += i128::from(l.quantity) * i128::from(l.unit_price_minor);
    }
    let mut per_sku: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, l) in c.lines.iter().enumerate() {
        let q = per_sku.entry(l.sku.as_str()).or_insert(0);
        *q += u64::from(l.quantity);
        if *q > u64::from(u32::MAX) {
            check.fail(
                format!("lines[{i}].quantity"),
                "range",
                format!(
                    "the quantity of {} on one order must be at most {}",
                    l.sku,
                    u32::MAX
                ),
            );
        }
    }
    check.amount("discount_minor", c.discount_minor, true);
    check.amount("tax_minor", c.tax_minor, true);
    check.amount("shipping_minor", c.shipping_minor, true);
    let total = subtotal + i128::from(c.tax_minor) + i128::from(c.shipping_minor)
        - i128::from(c.discount_minor);
    if total < 0 {
        check.fail(
            "discount_minor",
            "range",
            "must not exceed the order's lines plus tax and shipping",
        );
    } else if total > i128::from(AMOUNT_MAX) {
        check.fail(
            "lines",
            "range",
            format!("the order total must be at most {AMOUNT_MAX} minor units"),
        );
    }
    check.finish()?;
    let customer = existing_customer(world, c.customer_id, "customer_id")?;
    if customer.orders.contains_key(&c.order_id) {
        return Err(Rejection::already_exists(
            "order_id",
            format!("order {} already exists", c.order_id),
        ));
    }
    #[allow(clippy::cast_possible_truncation)] // bounded by AMOUNT_MAX above
    let total = Money::new(total as i64, c.currency);
    Ok(vec![customer_event(
        c.customer_id,
        CustomerEvent::OrderPlaced(OrderPlaced {
            order_id: c.order_id,
            sales_channel: c.sales_channel.clone(),
            lines: c.lines.clone(),
            discount_minor: c.discount_minor,
            tax_minor: c.tax_minor,
            shipping_minor: c.shipping_minor,
            total,
            campaign: c.campaign,
        }),
    )])
}

/// Decides [`Command::RecordReturn`].
pub(super) fn record_return(
    world: &World,
    c: &RecordReturn,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    check.amount("refund.minor", c.refund.minor, true);
    check.required("reason", &c.reason, SUBJECT_MAX);
    check.list_len("lines", c.lines.len(), ORDER_LINES_MAX);
    for (i, l) in c.lines.iter().enumerate() {
        check.required(&format!("lines[{i}].sku"), &l.sku, SHORT_MAX);
        if l.quantity == 0 {
            check.fail(
                format!("lines[{i}].quantity"),
                "range",
                "must be at least 1",
            );
        }
    }
    if c.lines.is_empty() && c.refund.minor == 0 {
        check.fail(
            "lines",
            "required",
            "a return needs returned lines or a refund",
        );
    }
    check.finish()?;
    let customer = existing_customer(world, c.customer_id, "customer_id")?;
    let order = customer.orders.get(&c.order_id).ok_or_else(|| {
        Rejection::not_found(
            "order_id",
            format!("order {} does not exist on this customer", c.order_id),
        )
    })?;
    if customer.returns.contains(&c.return_id) {
        return Err(Rejection::already_exists(
            "return_id",
            format!("return {} already exists", c.return_id),
        ));
    }
    let mut check = Check::new();
    same_currency(
        &mut check,
        "refund.currency",
        order.total.currency,
        c.refund.currency,
    );
    let left = order.total.minor - order.refunded_minor;
    if c.refund.minor > left {
        check.fail(
            "refund.minor",
            "refund_exceeds_order",
            format!(
                "refunds of order {} would exceed its total: {left} minor units are left to refund",
                c.order_id
            ),
        );
    }
    // Lines may repeat a SKU: compare the running total per SKU.
    let mut requested: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, l) in c.lines.iter().enumerate() {
        let total = requested.entry(l.sku.as_str()).or_insert(0);
        *total += u64::from(l.quantity);
        match order.returnable.get(&l.sku).copied() {
            None => check.fail(
                format!("lines[{i}].sku"),
                "not_on_order",
                format!("{} is not on order {}", l.sku, c.order_id),
            ),
            Some(q) if *total > u64::from(q) => check.fail(
                format!("lines[{i}].quantity"),
                "exceeds_ordered",
                format!(
                    "only {q} of {} are left to return (this return asks for {total})",
                    l.sku
                ),
            ),
            Some(_) => {}
        }
    }
    check.finish().map_err(|mut r| {
        r.kind = RejectionKind::FailedPrecondition;
        r
    })?;
    Ok(vec![customer_event(
        c.customer_id,
        CustomerEvent::ReturnRecorded(ReturnRecorded {
            return_id: c.return_id,
            order_id: c.order_id,
            lines: c.lines.clone(),
            refund: c.refund,
            reason: c.reason.clone(),
        }),
    )])
}
