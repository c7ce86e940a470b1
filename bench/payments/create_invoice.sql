\set n random(1, :users)
SELECT billing.create_invoice(bench.user_id(:n), 'films', 3);
