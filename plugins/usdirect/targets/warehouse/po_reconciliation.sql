-- usdirect_po_reconciliation: one row per PO, portable SQL for DuckDB and Postgres alike.
-- {fr} {fl} {sh} {si} {inv} {il} are the (schema-qualified) tables; {submitted}, {submitting},
-- {pending}, {needs_attention} the ledger states of orders_warehouse.py.
-- Quantities are BIGINT on both engines (DuckDB's SUM of INTEGER would be HUGEINT), money
-- DECIMAL(12,2). The invoice is split into products / shipping / fees / tax next to the expected
-- products cost, and each invoice line is checked against the order's own cost for that line.
WITH l AS (
    SELECT po_number,
           SUM(quantity) AS ordered_qty,
           SUM(CASE WHEN line_status = 'accepted' THEN quantity ELSE 0 END) AS accepted_qty,
           SUM(CASE WHEN line_status = 'accepted' THEN quantity * unit_cost ELSE 0 END) AS expected_cost,
           STRING_AGG(CASE WHEN line_status = 'rejected'
                           THEN 'line ' || CAST(line_number AS TEXT) || ' (' || sku || ') '
                                || COALESCE(line_reason, 'rejected') END, ', ' ORDER BY line_number)
               AS rejected_lines
    FROM {fl} GROUP BY po_number),
s AS (
    SELECT sh.po_number, COUNT(DISTINCT sh.shipment_id) AS shipments, SUM(si.quantity) AS shipped_qty
    FROM {sh} sh LEFT JOIN {si} si ON si.shipment_id = sh.shipment_id
    GROUP BY sh.po_number),
i AS (
    SELECT po_number,
           COUNT(*) AS invoices,
           SUM(CASE WHEN status = 'Credited' THEN 1 ELSE 0 END) AS credited,
           SUM(CASE WHEN status = 'Paid' THEN 1 ELSE 0 END) AS paid,
           STRING_AGG(DISTINCT status, ', ' ORDER BY status) AS invoice_status,
           SUM(total) AS invoiced_total,
           SUM(shipping) AS invoiced_shipping,
           SUM(fees) AS invoiced_fees,
           SUM(tax) AS invoiced_tax,
           STRING_AGG(check_problem, '; ' ORDER BY invoice_number) AS invoice_check
    FROM {inv} GROUP BY po_number),
iq AS (
    SELECT v.po_number,
           SUM(x.quantity) AS invoiced_qty,
           SUM(x.amount) AS invoiced_product_cost,
           STRING_AGG(CASE WHEN o.po_number IS NULL
                           THEN v.invoice_number || ' line ' || CAST(x.line_number AS TEXT)
                                || ' is not a line of the order'
                           WHEN o.unit_cost IS NOT NULL AND x.amount <> x.quantity * o.unit_cost
                           THEN v.invoice_number || ' line ' || CAST(x.line_number AS TEXT) || ': '
                                || CAST(x.quantity AS TEXT) || ' x ' || CAST(o.unit_cost AS TEXT)
                                || ' = ' || CAST(CAST(x.quantity * o.unit_cost AS DECIMAL(12,2)) AS TEXT)
                                || ' at the order''s cost, invoiced ' || CAST(x.amount AS TEXT) END,
                      '; ' ORDER BY v.invoice_number, x.line_number) AS cost_problems
    FROM {inv} v
    JOIN {il} x ON x.invoice_number = v.invoice_number
    LEFT JOIN {fl} o ON o.po_number = v.po_number AND o.line_number = x.line_number
    GROUP BY v.po_number)
SELECT
    f.po_number,
    f.fr_id,
    f.supplier_order_id,
    f.status AS request_status,
    f.order_status,
    CAST(COALESCE(l.ordered_qty, 0) AS BIGINT) AS ordered_qty,
    CAST(COALESCE(l.accepted_qty, 0) AS BIGINT) AS accepted_qty,
    CAST(COALESCE(s.shipped_qty, 0) AS BIGINT) AS shipped_qty,
    CAST(COALESCE(iq.invoiced_qty, 0) AS BIGINT) AS invoiced_qty,
    CAST(COALESCE(s.shipments, 0) AS BIGINT) AS shipments,
    CAST(COALESCE(l.expected_cost, 0) AS DECIMAL(12,2)) AS expected_cost,
    CAST(iq.invoiced_product_cost AS DECIMAL(12,2)) AS invoiced_product_cost,
    CAST(i.invoiced_shipping AS DECIMAL(12,2)) AS invoiced_shipping,
    CAST(i.invoiced_fees AS DECIMAL(12,2)) AS invoiced_fees,
    CAST(i.invoiced_tax AS DECIMAL(12,2)) AS invoiced_tax,
    CAST(i.invoiced_total AS DECIMAL(12,2)) AS invoiced_total,
    i.invoice_status,
    CASE
        WHEN f.status <> '{submitted}' THEN f.status
        WHEN f.order_status = 'cancelled' THEN 'cancelled'
        WHEN i.credited > 0 THEN 'credited'
        WHEN i.paid > 0 AND i.paid = i.invoices THEN 'paid'
        WHEN i.invoices > 0 THEN 'invoiced'
        WHEN COALESCE(s.shipped_qty, 0) = 0 THEN 'awaiting_shipment'
        WHEN s.shipped_qty < COALESCE(l.accepted_qty, 0) THEN 'partially_shipped'
        ELSE 'shipped'
    END AS state,
    CASE
        WHEN f.status <> '{submitted}' THEN f.status
        WHEN f.order_status = 'cancelled' THEN 'cancelled'
        WHEN COALESCE(s.shipped_qty, 0) = 0 THEN 'awaiting_shipment'
        WHEN s.shipped_qty < COALESCE(l.accepted_qty, 0) THEN 'partially_shipped'
        ELSE 'shipped'
    END AS fulfillment_state,
    f.inserted_at,
    f.submitted_at,
    CAST(EXTRACT(EPOCH FROM (CURRENT_TIMESTAMP - f.inserted_at)) / 86400 AS DECIMAL(10,1)) AS age_days,
    NULLIF(CONCAT_WS('; ',
        CASE WHEN f.status = '{needs_attention}' THEN f.last_error END,
        CASE WHEN f.status = '{submitting}'
             THEN 'submission outcome unknown: the next run asks US Direct before any retry' END,
        CASE WHEN f.status = '{pending}' AND f.last_error IS NOT NULL
             THEN 'last attempt failed: ' || f.last_error END,
        CASE WHEN l.rejected_lines IS NOT NULL THEN 'rejected by US Direct: ' || l.rejected_lines END,
        CASE WHEN f.order_status = 'on_hold' AND COALESCE(s.shipped_qty, 0) = 0
             THEN 'on hold at US Direct (order over 30 lb)' END,
        CASE WHEN COALESCE(s.shipped_qty, 0) > COALESCE(l.accepted_qty, 0) AND f.status = '{submitted}'
             THEN 'shipped ' || CAST(s.shipped_qty AS TEXT) || ' units but only '
                  || CAST(COALESCE(l.accepted_qty, 0) AS TEXT) || ' were accepted' END,
        CASE WHEN COALESCE(iq.invoiced_qty, 0) > COALESCE(s.shipped_qty, 0)
             THEN 'invoiced ' || CAST(iq.invoiced_qty AS TEXT) || ' units but only '
                  || CAST(COALESCE(s.shipped_qty, 0) AS TEXT) || ' shipped' END,
        i.invoice_check,
        iq.cost_problems,
        f.invoice_problem
    ), '') AS problem
FROM {fr} f
LEFT JOIN l ON l.po_number = f.po_number
LEFT JOIN s ON s.po_number = f.po_number
LEFT JOIN i ON i.po_number = f.po_number
LEFT JOIN iq ON iq.po_number = f.po_number
