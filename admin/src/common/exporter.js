// Every list's "Export", as a spreadsheet should read it:
//   - each amount in major units of its row's currency (42330 RUB is written
//     423.30, the currency in its own column), by the server's decimals (GET
//     /currencies), with a point for the decimal mark whatever the language;
//   - text that a spreadsheet would run as a formula (a first =, +, -, @, tab
//     or return: "CSV injection") behind an apostrophe, so that a tariff's
//     title or an e-mail address stays text; numbers are left as they are;
//   - every other column as the api gives it (times in ISO 8601, ids whole).
import jsonExport from 'jsonexport/dist';
import { downloadCSV } from 'react-admin';
import { MONEY_KEYS, minorToDecimal } from './format';

const FORMULA = /^[=+\-@\t\r]/;
const NUMBER = /^-?\d+(\.\d+)?$/;

function inert(value) {
    if (typeof value === 'string') return FORMULA.test(value) && !NUMBER.test(value) ? `'${value}` : value;
    if (Array.isArray(value)) return value.map(inert);
    if (value && typeof value === 'object') {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, inert(v)]));
    }
    return value;
}

function inMajorUnits(record, exponents) {
    const exponent = exponents.get(String(record.currency ?? '').trim().toUpperCase());
    if (exponent === undefined) return record;
    const row = { ...record };
    for (const key of Object.keys(row)) {
        const decimal = MONEY_KEYS.has(key) && row[key] !== null ? minorToDecimal(row[key], exponent) : null;
        if (decimal !== null) row[key] = decimal;
    }
    return row;
}

export async function exportForSpreadsheets(records, fetchRelatedRecords, dataProvider, resource) {
    const { data } = await dataProvider.getList('currencies', {
        pagination: { page: 1, perPage: 1000 }, sort: { field: 'code', order: 'ASC' }, filter: {},
    });
    const exponents = new Map(data.map(c => [c.code, c.exponent]));
    const rows = records.map(record => inert(inMajorUnits(record, exponents)));
    const csv = await new Promise((resolve, reject) =>
        jsonExport(rows, (err, out) => (err ? reject(err) : resolve(out))));
    downloadCSV(csv, resource);
}
