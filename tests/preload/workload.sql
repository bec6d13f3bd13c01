-- workload.sql - a deterministic sqlite3 workload for tests/preload.
--
--   sqlite3 :memory: < workload.sql
--
-- Run with and without libcapheap_malloc.so; the outputs must be equal. SQLite
-- allocates through malloc/realloc/free (and asks malloc_usable_size for the
-- real block size when it was built with it, as Debian's is): page cache,
-- b-tree cells, sorter buffers, prepared statements, strings. Every value is
-- computed from a recursive CTE, so the output does not depend on time,
-- randomness or platform.

PRAGMA cache_size = -16000;

CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL, region INTEGER NOT NULL, note TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, amount INTEGER NOT NULL,
                     day INTEGER NOT NULL, memo TEXT);
CREATE TABLE item (order_id INTEGER NOT NULL, line INTEGER NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL,
                   PRIMARY KEY (order_id, line)) WITHOUT ROWID;

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
INSERT INTO customer
SELECT i, 'customer-' || i || '-' || hex(i * 2654435761 % 1000003), i % 17,
       substr('lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor', 1 + i % 40)
FROM n;

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)
INSERT INTO orders
SELECT i, 1 + (i * 7919) % 5000, (i * 104729) % 100000, i % 365,
       printf('%s/%08d/%s', 'memo', i, replace(hex(zeroblob(1 + i % 50)), '00', 'ab'))
FROM n;

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000),
               l(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM l WHERE j < 3)
INSERT INTO item
SELECT i, j, 'SKU-' || ((i * 31 + j * 17) % 997), 1 + (i + j) % 9 FROM n, l;

CREATE INDEX orders_customer ON orders(customer_id);
CREATE INDEX orders_day_amount ON orders(day, amount);
CREATE INDEX item_sku ON item(sku);
CREATE INDEX customer_region ON customer(region, name);

-- joins and aggregates
SELECT 'regions', count(*), sum(total), max(total) FROM (
  SELECT c.region, sum(o.amount) AS total
  FROM customer c JOIN orders o ON o.customer_id = c.id
  GROUP BY c.region);

SELECT 'top', c.name, sum(o.amount) AS total, count(*) AS n
FROM customer c JOIN orders o ON o.customer_id = c.id
GROUP BY c.id ORDER BY total DESC, c.id LIMIT 5;

SELECT 'skus', count(DISTINCT sku), sum(qty), max(qty * length(sku)) FROM item;

SELECT 'busy-days', day, count(*), sum(amount) FROM orders
GROUP BY day HAVING count(*) > 109 ORDER BY day LIMIT 5;

SELECT 'sku-by-region', c.region, i.sku, sum(i.qty) AS q
FROM item i JOIN orders o ON o.id = i.order_id JOIN customer c ON c.id = o.customer_id
GROUP BY c.region, i.sku ORDER BY q DESC, c.region, i.sku LIMIT 5;

-- updates, deletes, a temp table, strings
UPDATE orders SET memo = upper(memo) || '!' WHERE amount % 3 = 0;
DELETE FROM item WHERE qty = 9;
CREATE TEMP TABLE summary AS
  SELECT customer_id, group_concat(id, ',') AS ids, sum(amount) AS amount
  FROM orders GROUP BY customer_id;
SELECT 'summary', count(*), sum(length(ids)), sum(amount) FROM summary;

-- a checksum over every table, in a fixed order
SELECT 'checksum', sum(h) FROM (
  SELECT (id * 31 + length(name) * 7 + region + length(coalesce(note, ''))) % 1000000007 AS h FROM customer
  UNION ALL
  SELECT (id * 17 + customer_id * 13 + amount + day * 3 + length(memo)) % 1000000007 FROM orders
  UNION ALL
  SELECT (order_id * 11 + line * 5 + qty + length(sku)) % 1000000007 FROM item);

SELECT 'text', length(group_concat(memo, '|')), substr(group_concat(memo, '|'), 1, 60)
FROM (SELECT memo FROM orders ORDER BY id DESC LIMIT 2000);

VACUUM;
PRAGMA integrity_check;
