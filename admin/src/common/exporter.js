// The lists' "Export" as a spreadsheet should read it: each amount in major
// units of its row's currency (42330 RUB is written 423.30, the currency in
// its own column), by the server's decimals (GET /currencies), with a point
// for the decimal mark whatever the panel's language; every other column as
// the api gives it (times in ISO 8601, ids whole).
import jsonExport from 'jsonexport/dist';
import { downloadCSV } from 'react-admin';
import { MONEY_KEYS, minorToDecimal } from './format';

export async function exportInMajorUnits(records, fetchRelatedRecords, dataProvider, resource) {
    const { data } = await dataProvider.getList('currencies', {
        pagination: { page: 1, perPage: 1000 }, sort: { field: 'code', order: 'ASC' }, filter: {},
    });
    const exponents = new Map(data.map(c => [c.code, c.exponent]));
    const rows = records.map(record => {
        const exponent = exponents.get(String(record.currency ?? '').trim().toUpperCase());
        if (exponent === undefined) return record;
        const row = { ...record };
        for (const key of Object.keys(row)) {
            const decimal = MONEY_KEYS.has(key) && row[key] !== null ? minorToDecimal(row[key], exponent) : null;
            if (decimal !== null) row[key] = decimal;
        }
        return row;
    });
    const csv = await new Promise((resolve, reject) =>
        jsonExport(rows, (err, out) => (err ? reject(err) : resolve(out))));
    downloadCSV(csv, resource);
}
