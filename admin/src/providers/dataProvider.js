// Lists are read from the api views with ra-data-postgrest; every change goes
// through the api function that owns it (the server checks and audits it),
// never a direct write to a view.
import postgrestRestProvider, { defaultSchema } from '@raphiniert/ra-data-postgrest';
import { API, httpClient, rpc } from './httpClient';

const primaryKeys = new Map([
    ['admin_personal_discounts', ['user_id']],
    ['months_discounts', ['months']],
    ['currencies', ['code']],
]);

// Big tables: PostgREST's planned count, never an exact count of millions.
const PLANNED_COUNT = new Set(['admin_payments', 'admin_audit', 'admin_users', 'admin_payment_events']);

const base = postgrestRestProvider({
    apiUrl: API,
    httpClient,
    defaultListOp: 'eq',
    primaryKeys,
    schema: defaultSchema,
});

const withCount = (resource, params) =>
    PLANNED_COUNT.has(resource)
        ? { ...params, meta: { ...(params.meta || {}), headers: { ...(params.meta?.headers || {}), Prefer: 'count=planned' } } }
        : params;

const clean = obj => Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined && v !== ''));

// resource -> how to create, update and delete through the api functions
const writers = {
    admin_tariffs: {
        create: d => rpc('create_tariff', clean({
            code: d.code, title: d.title, monthly_price: d.monthly_price,
            currency: d.currency, description: d.description,
        })),
        update: (d, prev) => rpc('update_tariff', {
            code: prev.code, title: d.title, description: d.description ?? '', active: d.active,
        }),
    },
    admin_personal_discounts: {
        create: d => rpc('set_personal_discount', clean({ user_id: d.user_id, percent: d.percent, valid_until: d.valid_until })),
        update: (d, prev) => rpc('set_personal_discount', clean({ user_id: prev.user_id, percent: d.percent, valid_until: d.valid_until })),
        delete: prev => rpc('remove_personal_discount', { user_id: prev.user_id }),
        id: r => r.user_id,
    },
    months_discounts: {
        create: d => rpc('set_months_discount', { months: d.months, percent: d.percent }),
        update: (d, prev) => rpc('set_months_discount', { months: prev.months, percent: d.percent }),
        delete: prev => rpc('remove_months_discount', { months: prev.months }),
        id: r => r.months,
    },
    admin_promo_codes: {
        create: d => rpc('create_promo_code', clean({
            code: d.code, percent: d.percent, valid_until: d.valid_until, valid_from: d.valid_from,
            max_redemptions: d.max_redemptions, tariff: d.tariff_code,
        })),
        delete: prev => rpc('delete_promo_code', { code: prev.code }),
    },
};

const withId = (resource, row) => {
    const w = writers[resource];
    return { ...row, id: w && w.id ? w.id(row) : row.id };
};

const refused = resource => Promise.reject(new Error(`billing.errors.read_only`));

// A planned count is the planner's guess: never let it hide a page that a
// full page of rows shows must exist, nor claim fewer rows than were read.
async function estimated(resource, params, read) {
    const result = await read(resource, withCount(resource, params));
    if (PLANNED_COUNT.has(resource) && params.pagination) {
        const { page, perPage } = params.pagination;
        const seen = (page - 1) * perPage + result.data.length + (result.data.length === perPage ? 1 : 0);
        result.total = Math.max(result.total || 0, seen);
    }
    return result;
}

export const dataProvider = {
    ...base,
    getList: (resource, params) => estimated(resource, params, base.getList),
    getManyReference: (resource, params) => estimated(resource, params, base.getManyReference),
    async create(resource, params) {
        const w = writers[resource];
        if (!w || !w.create) return refused(resource);
        return { data: withId(resource, await w.create(params.data)) };
    },
    async update(resource, params) {
        const w = writers[resource];
        if (!w || !w.update) return refused(resource);
        return { data: withId(resource, await w.update(params.data, params.previousData)) };
    },
    async delete(resource, params) {
        const w = writers[resource];
        if (!w || !w.delete) return refused(resource);
        return { data: withId(resource, await w.delete(params.previousData)) };
    },
    async deleteMany(resource, params) {
        const w = writers[resource];
        if (!w || !w.delete) return refused(resource);
        const { data } = await base.getMany(resource, { ids: params.ids });
        for (const row of data) await w.delete(row);
        return { data: params.ids };
    },
    updateMany: refused,
    rpc,
};
