/**
 * Store-side workload of the example retail ERP (mappings/retail-example):
 * what a store's POS and back office write all day, as real store
 * transactions. Used by the demo, the tests and the benchmark.
 *
 * - Every value is bound ($1..); nothing is spliced into SQL.
 * - Money is exact: numeric arithmetic in SQL, or integer cents in JS.
 * - One sale is one statement (data-modifying CTEs), so one round trip.
 * - Deterministic for a seed: a seeded PRNG draws every choice, and random
 *   picks of existing rows are taken by position in id order.
 */
import type pg from 'pg';

export interface RetailWorkloadOptions {
  db: pg.Pool;
  /** The store's code, as configured in branchline (e.g. `S001`). */
  storeCode: string;
  /** PRNG seed; default derived from storeCode, so stores differ. */
  seed?: number;
  /** Lines per sale, default 5. */
  linesPerSale?: number;
}

export const RETAIL_EVENT_KINDS = [
  'sale', 'confirmSale', 'cancelSale', 'editSale', 'deleteSale',
  'newCustomer', 'updateCustomer', 'coupon', 'cancelCoupon',
  'receivable', 'settleReceivable', 'zClosing',
] as const;
export type RetailEventKind = (typeof RETAIL_EVENT_KINDS)[number];

/** Relative frequency of each event in mixed(), and what to do instead when it finds nothing to act on. */
const MIX: Record<RetailEventKind, { weight: number; otherwise?: RetailEventKind }> = {
  sale: { weight: 30 },
  confirmSale: { weight: 12, otherwise: 'sale' },
  cancelSale: { weight: 4, otherwise: 'sale' },
  editSale: { weight: 8, otherwise: 'sale' },
  deleteSale: { weight: 3, otherwise: 'sale' },
  newCustomer: { weight: 6 },
  updateCustomer: { weight: 5, otherwise: 'newCustomer' },
  coupon: { weight: 15 },
  cancelCoupon: { weight: 3, otherwise: 'coupon' },
  receivable: { weight: 6, otherwise: 'newCustomer' },
  settleReceivable: { weight: 5, otherwise: 'receivable' },
  zClosing: { weight: 3 },
};

/** Tills (ECFs) of the store. */
const TILLS = 3;

/** Thrown when an event without an id finds no row to act on (e.g. no open sale). */
export class NothingToPickError extends Error {
  constructor(what: string) {
    super(`retail workload: no ${what} to act on`);
    this.name = 'NothingToPickError';
  }
}

// ---------------------------------------------------------------- SQL

const SALE_SQL = `
WITH l AS (
  SELECT u.ord::int AS line_no, u.product_id, u.quantity, p.price AS unit_price,
         round(u.quantity * p.price, 2) AS gross,
         round(round(u.quantity * p.price, 2) * u.discount_rate, 2) AS discount
    FROM unnest($5::int[], $6::numeric[], $7::numeric[]) WITH ORDINALITY AS u(product_id, quantity, discount_rate, ord)
    JOIN shelf_price p ON p.id = u.product_id
), h AS (
  INSERT INTO sale (customer_id, seller, status, notes, total)
  SELECT $1::int, $2::text, $3::text, $4::text, coalesce(sum(l.gross - l.discount), 0) FROM l
  RETURNING id
), ins AS (
  INSERT INTO sale_line (sale_id, line_no, product_id, quantity, unit_price, discount, amount)
  SELECT h.id, l.line_no, l.product_id, l.quantity, l.unit_price, l.discount, l.gross - l.discount
    FROM h CROSS JOIN l ORDER BY l.line_no
  RETURNING 1
)
SELECT h.id::text AS id, (SELECT count(*) FROM ins)::int AS lines FROM h`;

const COUPON_SQL = `
WITH i AS (
  SELECT u.ord, u.product_id, u.quantity, p.price AS unit_price, round(u.quantity * p.price, 2) AS amount
    FROM unnest($2::int[], $3::numeric[]) WITH ORDINALITY AS u(product_id, quantity, ord)
    JOIN shelf_price p ON p.id = u.product_id
), c AS (
  INSERT INTO fiscal_coupon (till, business_day, total)
  SELECT $1::int, CURRENT_DATE, coalesce(sum(i.amount), 0) FROM i
  RETURNING id, business_day
), ins AS (
  INSERT INTO fiscal_coupon_item (coupon_id, product_id, quantity, unit_price, amount, business_day)
  SELECT c.id, i.product_id, i.quantity, i.unit_price, i.amount, c.business_day
    FROM c CROSS JOIN i ORDER BY i.ord
)
SELECT id::text AS id FROM c`;

const CUSTOMERS_SQL = `
INSERT INTO customer (id, code, name, tax_id, email, phone, city)
SELECT n.id, $1::text || '-C' || lpad(n.id::text, 6, '0'), n.name, n.tax_id, n.email, n.phone, n.city
  FROM (SELECT nextval(pg_get_serial_sequence('public.customer', 'id'))::int AS id, c.*
          FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS c(name, tax_id, email, phone, city)) n
RETURNING id::text AS id`;

const PRODUCTS_SQL = `
INSERT INTO product (id, sku, description, unit, price)
SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::numeric[])
ON CONFLICT (id) DO NOTHING`;

const RECEIVABLE_SQL = `
INSERT INTO receivable (id, document_number, customer_id, issued_on, due_on, amount, cost_center)
SELECT n.id, lpad(n.id::text, 6, '0') || '/1', $1::int, CURRENT_DATE, CURRENT_DATE + $2::int, $3::numeric, $4::text
  FROM (SELECT nextval(pg_get_serial_sequence('public.receivable', 'id')) AS id) n
RETURNING id::text AS id`;

const Z_CLOSING_SQL = `
INSERT INTO z_closing (till, business_day, closed_at, coupon_count, gross_total, cancelled_total)
SELECT $1::int, CURRENT_DATE, now(), count(*), coalesce(sum(total), 0),
       coalesce(sum(total) FILTER (WHERE status = 'cancelled'), 0)
  FROM fiscal_coupon WHERE till = $1::int AND business_day = CURRENT_DATE
ON CONFLICT (till, business_day) DO UPDATE
   SET closed_at = excluded.closed_at, coupon_count = excluded.coupon_count,
       gross_total = excluded.gross_total, cancelled_total = excluded.cancelled_total`;

/** Picks the row at position floor($1 * count) in id order among those that qualify. */
function pickSql(table: string, where: string, extra = ''): string {
  return `SELECT id::text AS id${extra} FROM ${table} WHERE ${where} ORDER BY id
           OFFSET (floor($1::float8 * (SELECT count(*) FROM ${table} WHERE ${where})))::bigint LIMIT 1`;
}
const PICK = {
  openSale: pickSql('sale', "status = 'open'"),
  liveSale: pickSql('sale', "status <> 'cancelled'"),
  customer: pickSql('customer', 'true', ', name'),
  finalCoupon: pickSql('fiscal_coupon', "status = 'final'"),
  openReceivable: pickSql('receivable', "status = 'open'"),
} as const;

// ---------------------------------------------------------------- data

type Unit = 'UN' | 'KG' | 'L' | 'CX' | 'PCT';
/** [description, unit, base price in cents] */
const GOODS: ReadonlyArray<readonly [string, Unit, number]> = [
  ['ARROZ BRANCO TIPO 1 5KG', 'PCT', 2490], ['FEIJAO CARIOCA 1KG', 'PCT', 899],
  ['ACUCAR CRISTAL 1KG', 'PCT', 479], ['CAFE TORRADO E MOIDO 500G', 'PCT', 1890],
  ['LEITE UHT INTEGRAL 1L', 'UN', 549], ['OLEO DE SOJA 900ML', 'UN', 799],
  ['MACARRAO ESPAGUETE 500G', 'PCT', 459], ['FARINHA DE TRIGO 1KG', 'PCT', 549],
  ['BISCOITO RECHEADO 130G', 'PCT', 329], ['REFRIGERANTE COLA 2L', 'UN', 999],
  ['AGUA MINERAL SEM GAS 500ML', 'UN', 249], ['CERVEJA PILSEN LATA 350ML', 'UN', 429],
  ['SABAO EM PO 1,6KG', 'CX', 2190], ['DETERGENTE LIQUIDO 500ML', 'UN', 279],
  ['PAPEL HIGIENICO FOLHA DUPLA 12 ROLOS', 'PCT', 2290], ['CREME DENTAL 90G', 'UN', 549],
  ['SHAMPOO 350ML', 'UN', 1690], ['OVOS BRANCOS 12 UNIDADES', 'CX', 1190],
  ['IOGURTE NATURAL 170G', 'UN', 389], ['MANTEIGA COM SAL 200G', 'UN', 1290],
  ['SUCO DE LARANJA INTEGRAL', 'L', 1290], ['BANANA PRATA', 'KG', 699],
  ['TOMATE ITALIANO', 'KG', 899], ['BATATA INGLESA', 'KG', 599], ['CEBOLA', 'KG', 549],
  ['QUEIJO MUSSARELA FATIADO', 'KG', 4990], ['PRESUNTO COZIDO FATIADO', 'KG', 3590],
  ['CARNE MOIDA PATINHO', 'KG', 4290], ['FRANGO INTEIRO CONGELADO', 'KG', 1390],
  ['PAO FRANCES', 'KG', 1690],
];
const BRANDS = ['BOM PRECO', 'SAO JORGE', 'VITORIA', 'DONA MARIA', 'SERRA AZUL', 'TROPICAL', 'ECONOMICO', 'CASA NOVA'];
const PACKS = ['', 'PROMOCIONAL', 'LEVE MAIS', 'FAMILIA', 'REFIL', 'KIT'];
const FIRST = ['Maria', 'José', 'Ana', 'João', 'Francisca', 'Antônio', 'Adriana', 'Carlos', 'Juliana', 'Paulo',
  'Márcia', 'Lucas', 'Fernanda', 'Rafael', 'Patrícia', 'Gabriel', 'Aline', 'Marcos', 'Camila', 'Bruno'];
const LAST = ['Silva', 'Santos', 'Oliveira', 'Souza', 'Rodrigues', 'Ferreira', 'Alves', 'Pereira', 'Lima', 'Gomes',
  'Costa', 'Ribeiro', 'Martins', 'Carvalho', 'Almeida', 'Lopes', 'Araújo', 'Barbosa'];
const BUSINESS = ['Mercadinho', 'Padaria', 'Restaurante', 'Lanchonete', 'Mercearia', 'Distribuidora', 'Açougue', 'Bar'];
const LEGAL = ['Ltda', 'ME', 'EIRELI', 'S/A'];
const MAIL = ['Gmail.com', 'hotmail.com', 'Yahoo.com.br', 'uol.com.br', 'Outlook.com'];
const CITIES: ReadonlyArray<readonly [string, number]> = [
  ['São Paulo', 11], ['Campinas', 19], ['Santos', 13], ['Rio de Janeiro', 21], ['Belo Horizonte', 31],
  ['Curitiba', 41], ['Porto Alegre', 51], ['Salvador', 71], ['Recife', 81], ['Fortaleza', 85],
  ['Goiânia', 62], ['Florianópolis', 48],
];
const SELLERS = ['Ana Paula', 'Carlos Eduardo', 'Juliana', 'Marcos', 'Patrícia', 'Rafael'];
const NOTES = ['Cliente retira na loja', 'Entregar após as 18h', 'Pagamento em 3x no cartão',
  'Orçamento aprovado por telefone', 'Troca de mercadoria'];
const COST_CENTERS = ['CC-01', 'CC-02', 'CC-03'];

// ---------------------------------------------------------------- helpers

/** mulberry32: a small, fast, seeded PRNG. */
class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** [0, 1) */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  digits(n: number): number[] {
    return Array.from({ length: n }, () => this.int(0, 9));
  }
}

function hashSeed(text: string): number {
  let h = 2166136261;
  for (const ch of text) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  return h >>> 0;
}

/** Integer cents -> numeric text ('1234' -> '12.34'); non-negative. */
function money(cents: number): string {
  return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
}
/** Numeric text -> integer units of 10^-scale ('0.735', 3 -> 735). */
function scaled(text: string, scale: number): number {
  const [int = '0', frac = ''] = text.split('.');
  return Number(int) * 10 ** scale + Number(frac.padEnd(scale, '0').slice(0, scale));
}
/** Thousandths -> numeric(12,3) text. */
function qty(milli: number): string {
  return `${Math.floor(milli / 1000)}.${String(milli % 1000).padStart(3, '0')}`;
}
/** round(quantity * price, 2) in cents, as PostgreSQL rounds (half away from zero). */
function lineGross(milli: number, priceCents: number): number {
  return Math.floor((milli * priceCents + 500) / 1000);
}

function ean13(id: number): string {
  const body = `789${String(id).padStart(9, '0')}`;
  const sum = [...body].reduce((s, d, i) => s + Number(d) * (i % 2 === 0 ? 1 : 3), 0);
  return body + String((10 - (sum % 10)) % 10);
}
/** CPF (weights from 10 / 11) or CNPJ (weights 5..2,9..2 / 6..2,9..2) check digits appended. */
function taxId(base: number[]): string {
  const digits = [...base];
  for (let round = 0; round < 2; round++) {
    const n = digits.length;
    const weights =
      base.length === 9
        ? digits.map((_, i) => n + 1 - i)
        : digits.map((_, i) => ((n - 1 - i) % 8) + 2);
    const sum = digits.reduce((s, d, i) => s + d * weights[i]!, 0);
    const r = sum % 11;
    digits.push(base.length === 9 ? ((sum * 10) % 11) % 10 : r < 2 ? 0 : 11 - r);
  }
  return digits.join('');
}
function ascii(text: string): string {
  return text.normalize('NFD').replace(/[\u0300-\u036f]/g, '').replace(/[^A-Za-z0-9.]/g, '');
}

interface CustomerRow { name: string; taxId: string | null; email: string | null; phone: string; city: string }

// ---------------------------------------------------------------- workload

export class RetailWorkload {
  private readonly db: pg.Pool;
  private readonly storeCode: string;
  private readonly linesPerSale: number;
  private readonly rng: Rng;
  private loaded: Promise<void> | undefined;
  /** Active products [id, weighed?], in id order. */
  private products: Array<readonly [number, boolean]> = [];
  private customerIds: number[] = [];

  constructor(opts: RetailWorkloadOptions) {
    this.db = opts.db;
    this.storeCode = opts.storeCode;
    this.linesPerSale = opts.linesPerSale ?? 5;
    this.rng = new Rng(opts.seed ?? hashSeed(opts.storeCode));
  }

  /** Inserts the product catalogue (ids 1..products, default 500) and customers (default 20); one transaction. */
  async setup(opts: { products?: number; customers?: number } = {}): Promise<void> {
    const cols = this.catalogueRows(opts.products ?? 500);
    const customers = Array.from({ length: opts.customers ?? 20 }, () => this.customerRow());
    await this.tx(async (c) => {
      await c.query(PRODUCTS_SQL, cols);
      await this.insertCustomers(c, customers);
    });
    this.loaded = undefined; // reload products and customers on next use
  }

  /**
   * Inserts the product catalogue (ids 1..products) into \`db\`'s \`product\`
   * table: HQ's master, where HQ owns the catalogue and hands it down.
   */
  async catalogue(products: number): Promise<void> {
    await this.db.query(PRODUCTS_SQL, this.catalogueRows(products));
  }

  private catalogueRows(nProducts: number): [number[], string[], string[], string[], string[]] {
    const cols: [number[], string[], string[], string[], string[]] = [[], [], [], [], []];
    for (let id = 1; id <= nProducts; id++) {
      const i = id - 1;
      const [name, unit, base] = GOODS[i % GOODS.length]!;
      const brand = BRANDS[Math.floor(i / GOODS.length) % BRANDS.length]!;
      const pack = PACKS[Math.floor(i / (GOODS.length * BRANDS.length)) % PACKS.length]!;
      const cents = Math.max(99, Math.floor((base * this.rng.int(85, 130)) / 1000) * 10 + 9);
      cols[0].push(id);
      cols[1].push(ean13(id));
      cols[2].push([name, brand, pack].filter(Boolean).join(' '));
      cols[3].push(unit);
      cols[4].push(money(cents));
    }
    return cols;
  }

  /** One sale (header + lines) in one statement, so one transaction and one round trip. Returns the sale id. */
  async sale(opts: { lines?: number; status?: 'open' | 'confirmed' } = {}): Promise<string> {
    await this.ensureLoaded();
    const { id } = await this.insertSale(opts.lines, opts.status);
    return id;
  }

  /** n sales, each its own transaction, over up to `concurrency` pooled connections. Returns rows written. */
  async sales(n: number, opts: { lines?: number; concurrency?: number } = {}): Promise<number> {
    await this.ensureLoaded();
    let started = 0;
    let rows = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (!failed && started < n) {
        started++;
        try {
          const written = await this.insertSale(opts.lines);
          rows += 1 + written.lines; // not `rows += await ...`: that reads rows before the await
        } catch (err) {
          failed = true;
          throw err;
        }
      }
    };
    const workers = Math.max(1, Math.min(opts.concurrency ?? 1, n));
    await Promise.all(Array.from({ length: workers }, worker));
    return rows;
  }

  /** Confirms an open sale (a random one without id). */
  async confirmSale(id?: string): Promise<void> {
    await this.tx(async (c) => {
      const sid = id ?? (await this.pick(c, PICK.openSale, 'open sale')).id;
      const r = await c.query(`UPDATE sale SET status = 'confirmed' WHERE id = $1 AND status = 'open'`, [sid]);
      if (r.rowCount !== 1) throw new Error(`retail workload: sale ${sid} is not open`);
    });
  }

  /** Cancels a sale that is not cancelled yet (a random one without id); its lines stay. */
  async cancelSale(id?: string): Promise<void> {
    await this.tx(async (c) => {
      const sid = id ?? (await this.pick(c, PICK.liveSale, 'sale')).id;
      const r = await c.query(`UPDATE sale SET status = 'cancelled' WHERE id = $1 AND status <> 'cancelled'`, [sid]);
      if (r.rowCount !== 1) throw new Error(`retail workload: sale ${sid} is missing or already cancelled`);
    });
  }

  /**
   * Changes quantities (and sometimes the price) of 1 to 3 lines of a sale
   * that is not cancelled (a random open one without id), then recomputes
   * its total: several UPDATEs in one transaction.
   */
  async editSale(id?: string): Promise<void> {
    await this.tx(async (c) => {
      const sid = id ?? (await this.pick(c, PICK.openSale, 'open sale')).id;
      const head = await c.query(`SELECT id FROM sale WHERE id = $1 AND status <> 'cancelled' FOR UPDATE`, [sid]);
      if (head.rowCount !== 1) throw new Error(`retail workload: sale ${sid} is missing or cancelled`);
      const { rows } = await c.query<{ id: string; unit_price: string; unit: string }>(
        `SELECT l.id::text AS id, l.unit_price::text AS unit_price, p.unit
           FROM sale_line l JOIN product p ON p.id = l.product_id
          WHERE l.sale_id = $1 ORDER BY l.line_no`,
        [sid],
      );
      const order = rows.map((_, i) => i);
      for (let i = order.length - 1; i > 0; i--) {
        const j = this.rng.int(0, i);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      for (const idx of order.slice(0, this.rng.int(1, Math.min(3, rows.length)))) {
        const line = rows[idx]!;
        let price = scaled(line.unit_price, 2);
        if (this.rng.chance(0.3)) price = Math.floor((price * this.rng.int(90, 110) + 50) / 100);
        const milli = this.quantity(line.unit === 'KG');
        const gross = lineGross(milli, price);
        const discount = Math.floor((gross * this.discountPct() + 50) / 100);
        await c.query(
          `UPDATE sale_line SET quantity = $2, unit_price = $3, discount = $4, amount = $5 WHERE id = $1`,
          [line.id, qty(milli), money(price), money(discount), money(gross - discount)],
        );
      }
      await c.query(
        `UPDATE sale SET total = (SELECT coalesce(sum(amount), 0) FROM sale_line WHERE sale_id = $1) WHERE id = $1`,
        [sid],
      );
    });
  }

  /** Deletes a sale (a random open one without id); its lines go with it (ON DELETE CASCADE). */
  async deleteSale(id?: string): Promise<void> {
    await this.tx(async (c) => {
      const sid = id ?? (await this.pick(c, PICK.openSale, 'open sale')).id;
      const r = await c.query(`DELETE FROM sale WHERE id = $1`, [sid]);
      if (r.rowCount !== 1) throw new Error(`retail workload: sale ${sid} does not exist`);
    });
  }

  /** Registers a customer at the store. Returns its id. */
  async newCustomer(): Promise<string> {
    await this.ensureLoaded();
    const row = this.customerRow();
    const [id] = await this.tx((c) => this.insertCustomers(c, [row]));
    return id!;
  }

  /** New phone, sometimes a new e-mail or city, for a customer (a random one without id). */
  async updateCustomer(id?: string): Promise<void> {
    await this.tx(async (c) => {
      const picked = id === undefined ? await this.pick(c, PICK.customer, 'customer') : { id };
      const [city, ddd] = this.rng.pick(CITIES);
      const email = this.rng.chance(0.5)
        ? `${ascii(String(picked.name ?? 'cliente').split(' ')[0]!)}${this.rng.int(1, 99)}@${this.rng.pick(MAIL)}`
        : null;
      const r = await c.query(
        `UPDATE customer SET phone = $2, email = coalesce($3, email),
                city = CASE WHEN $4::boolean THEN $5 ELSE city END, updated_at = now()
          WHERE id = $1`,
        [picked.id, this.phone(ddd), email, this.rng.chance(0.3), city],
      );
      if (r.rowCount !== 1) throw new Error(`retail workload: customer ${picked.id} does not exist`);
    });
  }

  /** A fiscal coupon with `items` items (default 1..8) at a random till, business day today. Returns its id. */
  async coupon(items?: number): Promise<string> {
    await this.ensureLoaded();
    const till = this.rng.int(1, TILLS);
    const n = items ?? this.rng.int(1, 8);
    const productIds: number[] = [];
    const quantities: string[] = [];
    for (let i = 0; i < n; i++) {
      const [pid, weighed] = this.rng.pick(this.products);
      productIds.push(pid);
      quantities.push(qty(this.quantity(weighed)));
    }
    const r = await this.db.query<{ id: string }>({ name: 'retail-coupon', text: COUPON_SQL, values: [till, productIds, quantities] });
    return r.rows[0]!.id;
  }

  /** Cancels a final coupon (a random one without id) and marks its items cancelled. */
  async cancelCoupon(id?: string): Promise<void> {
    await this.tx(async (c) => {
      const cid = id ?? (await this.pick(c, PICK.finalCoupon, 'final coupon')).id;
      const r = await c.query(`UPDATE fiscal_coupon SET status = 'cancelled' WHERE id = $1 AND status = 'final'`, [cid]);
      if (r.rowCount !== 1) throw new Error(`retail workload: coupon ${cid} is missing or already cancelled`);
      await c.query(`UPDATE fiscal_coupon_item SET cancelled = true WHERE coupon_id = $1`, [cid]);
    });
  }

  /** A receivable from a random customer, due in 30, 60 or 90 days. Returns its id. */
  async receivable(): Promise<string> {
    return this.tx(async (c) => {
      const customer = await this.pick(c, PICK.customer, 'customer');
      const r = await c.query<{ id: string }>(RECEIVABLE_SQL, [
        customer.id,
        this.rng.pick([30, 60, 90]),
        money(this.rng.int(5000, 250000)),
        this.rng.pick(COST_CENTERS),
      ]);
      return r.rows[0]!.id;
    });
  }

  /** Settles an open receivable today (a random one without id). */
  async settleReceivable(id?: string): Promise<void> {
    await this.tx(async (c) => {
      const rid = id ?? (await this.pick(c, PICK.openReceivable, 'open receivable')).id;
      const r = await c.query(
        `UPDATE receivable SET status = 'settled', settled_on = CURRENT_DATE WHERE id = $1 AND status = 'open'`,
        [rid],
      );
      if (r.rowCount !== 1) throw new Error(`retail workload: receivable ${rid} is not open`);
    });
  }

  /** Z closing of a random till for today, from its coupons; again for the same till and day updates it. */
  async zClosing(): Promise<void> {
    await this.db.query(Z_CLOSING_SQL, [this.rng.int(1, TILLS)]);
  }

  /** n transactions, a random mix of all events; deterministic for a seed. Returns how many of each ran. */
  async mixed(n: number): Promise<Record<string, number>> {
    const counts: Record<string, number> = Object.fromEntries(RETAIL_EVENT_KINDS.map((k) => [k, 0]));
    const total = RETAIL_EVENT_KINDS.reduce((s, k) => s + MIX[k].weight, 0);
    for (let i = 0; i < n; i++) {
      let r = this.rng.next() * total;
      let kind: RetailEventKind = RETAIL_EVENT_KINDS.find((k) => (r -= MIX[k].weight) < 0) ?? 'sale';
      for (;;) {
        try {
          await this.run(kind);
          break;
        } catch (err) {
          const otherwise = MIX[kind].otherwise;
          if (!(err instanceof NothingToPickError) || otherwise === undefined) throw err;
          kind = otherwise;
        }
      }
      counts[kind] = (counts[kind] ?? 0) + 1;
    }
    return counts;
  }

  // ------------------------------------------------------------ internals

  private async run(kind: RetailEventKind): Promise<unknown> {
    switch (kind) {
      case 'sale': return this.sale();
      case 'confirmSale': return this.confirmSale();
      case 'cancelSale': return this.cancelSale();
      case 'editSale': return this.editSale();
      case 'deleteSale': return this.deleteSale();
      case 'newCustomer': return this.newCustomer();
      case 'updateCustomer': return this.updateCustomer();
      case 'coupon': return this.coupon();
      case 'cancelCoupon': return this.cancelCoupon();
      case 'receivable': return this.receivable();
      case 'settleReceivable': return this.settleReceivable();
      case 'zClosing': return this.zClosing();
    }
  }

  private async insertSale(lines?: number, status?: 'open' | 'confirmed'): Promise<{ id: string; lines: number }> {
    const n = lines ?? this.linesPerSale;
    const productIds: number[] = [];
    const quantities: string[] = [];
    const discounts: string[] = [];
    for (let i = 0; i < n; i++) {
      const [pid, weighed] = this.rng.pick(this.products);
      productIds.push(pid);
      quantities.push(qty(this.quantity(weighed)));
      discounts.push(`0.${String(this.discountPct()).padStart(2, '0')}`);
    }
    const values = [
      this.customerIds.length > 0 && this.rng.chance(0.6) ? this.rng.pick(this.customerIds) : null,
      this.rng.pick(SELLERS),
      status ?? (this.rng.chance(0.7) ? 'confirmed' : 'open'),
      this.rng.chance(0.1) ? this.rng.pick(NOTES) : null,
      productIds,
      quantities,
      discounts,
    ];
    const r = await this.db.query<{ id: string; lines: number }>({ name: 'retail-sale', text: SALE_SQL, values });
    return r.rows[0]!;
  }

  private async insertCustomers(c: pg.PoolClient, rows: CustomerRow[]): Promise<string[]> {
    if (rows.length === 0) return [];
    const r = await c.query<{ id: string }>(CUSTOMERS_SQL, [
      this.storeCode,
      rows.map((x) => x.name),
      rows.map((x) => x.taxId),
      rows.map((x) => x.email),
      rows.map((x) => x.phone),
      rows.map((x) => x.city),
    ]);
    const ids = r.rows.map((x) => x.id);
    if (this.loaded !== undefined) this.customerIds.push(...ids.map(Number));
    return ids;
  }

  private customerRow(): CustomerRow {
    const [city, ddd] = this.rng.pick(CITIES);
    const last = this.rng.pick(LAST);
    if (this.rng.chance(0.2)) {
      const name = `${this.rng.pick(BUSINESS)} ${last} ${this.rng.pick(LEGAL)}`;
      const taxId = this.rng.chance(0.9) ? this.cnpj() : null;
      return { name, taxId, email: `contato@${ascii(name).toLowerCase()}.com.br`, phone: this.phone(ddd), city };
    }
    const first = this.rng.pick(FIRST);
    const email = this.rng.chance(0.8) ? `${ascii(first)}.${ascii(last)}@${this.rng.pick(MAIL)}` : null;
    return { name: `${first} ${this.rng.pick(LAST)} ${last}`, taxId: taxId(this.rng.digits(9)), email, phone: this.phone(ddd), city };
  }

  private cnpj(): string {
    return taxId([...this.rng.digits(8), 0, 0, 0, 1]);
  }

  private phone(ddd: number): string {
    return `(${ddd}) 9${this.rng.int(1000, 9999)}-${this.rng.int(1000, 9999)}`;
  }

  /** Quantity in thousandths: 0.100..2.500 kg for weighed goods, else 1..6 units (mostly 1). */
  private quantity(weighed: boolean): number {
    if (weighed) return this.rng.int(20, 500) * 5;
    return (this.rng.chance(0.6) ? 1 : this.rng.int(2, 6)) * 1000;
  }

  /** Discount in percent: most lines none, some 5% or 10%. */
  private discountPct(): number {
    const r = this.rng.next();
    return r < 0.85 ? 0 : r < 0.95 ? 5 : 10;
  }

  private async pick(c: pg.PoolClient, sql: string, what: string): Promise<{ id: string; name?: string }> {
    const r = await c.query<{ id: string; name?: string }>(sql, [this.rng.next()]);
    const row = r.rows[0];
    if (row === undefined) throw new NothingToPickError(what);
    return row;
  }

  private ensureLoaded(): Promise<void> {
    this.loaded ??= (async () => {
      const [p, c] = await Promise.all([
        this.db.query<{ id: number; unit: string }>(`SELECT id, unit FROM product WHERE active ORDER BY id`),
        this.db.query<{ id: number }>(`SELECT id FROM customer ORDER BY id`),
      ]);
      if (p.rows.length === 0) throw new Error('retail workload: the store has no active products; run setup() first');
      this.products = p.rows.map((x) => [x.id, x.unit === 'KG'] as const);
      this.customerIds = c.rows.map((x) => x.id);
    })().catch((err: unknown) => {
      this.loaded = undefined;
      throw err;
    });
    return this.loaded;
  }

  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.db.connect();
    let broken: Error | undefined;
    try {
      await c.query('BEGIN');
      const result = await fn(c);
      await c.query('COMMIT');
      return result;
    } catch (err) {
      await c.query('ROLLBACK').catch((e: unknown) => {
        broken = e instanceof Error ? e : new Error(String(e));
      });
      throw err;
    } finally {
      c.release(broken);
    }
  }
}
