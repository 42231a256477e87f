-- PostgreSQL seed for tests/seeknal_compat/seeknal/pg (loaded by tests/test_seeknal_compat_pg.py)
CREATE SCHEMA raw;
CREATE TABLE raw.subscriptions (
    subscription_id integer PRIMARY KEY,
    customer_id     text NOT NULL,
    plan            text NOT NULL,
    monthly_fee     numeric(8,2) NOT NULL,
    started_on      date NOT NULL,
    cancelled_on    date
);
INSERT INTO raw.subscriptions VALUES
    (1, 'c1', 'basic',   9.99, '2024-01-05', NULL),
    (2, 'c2', 'pro',    29.00, '2024-01-20', '2024-03-01'),
    (3, 'c3', 'pro',    29.00, '2024-02-11', NULL),
    (4, 'c1', 'team',   99.50, '2024-03-02', NULL),
    (5, 'c4', 'basic',   9.99, '2024-03-15', '2024-04-15');
CREATE TABLE public.customers (customer_id text PRIMARY KEY, country text NOT NULL, active boolean NOT NULL);
INSERT INTO public.customers VALUES ('c1', 'NL', true), ('c2', 'DE', false), ('c3', 'NL', true), ('c4', 'FR', true);
