SELECT billing.settle_payment(q.id, 'paid') FROM bench.queue q WHERE q.n = (SELECT nextval('bench.next'));
