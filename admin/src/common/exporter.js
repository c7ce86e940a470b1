// Every list's "Export", as a spreadsheet should read it:
//   - each amount in major units of its row's currency (42330 RUB is written
//     423.30, the currency in its own column), by the server's decimals (GET
//     /currencies), with a point for the decimal mark whatever the language;
//   - text that a spreadsheet would run as a formula (a first =, +, -, @, tab
//     or return: "CSV injection") behind an apostrophe, so that a tariff's
//     title or an e-mail address stays text; numbers are left as they are;
//   - every other column as the api gives it (times in ISO 8601, ids whole);
//   - comma-separated UTF-8 with a byte order mark.  A spreadsheet set to a
//     language that writes a decimal comma (Russian) takes the file through
//     its import dialog ("comma", "point"), not by opening it.
import jsonExport from 'jsonexport/dist';
import { downloadCSV } from 'react-admin';
import { MONEY_KEYS, minorToDecimal } from './format';

const FORMULA = /^[=+\-@\t\r]/;
const NUMBER = /^-?\d+(\.\d+)?$/;

function inert(value) {
    if (typeof value === 'string') return FORMULA.test(value) && !NUMBER.test(value) ? `'${value}` : value;
    // A list of plain values is one cell (jsonexport joins it with ";"):
    // judged as that cell, not item by item.
    if (Array.isArray(value) && value.every(v => v === null || typeof v !== 'object')) return inert(value.join(';'));
    if (Array.isArray(value)) return value.map(inert);
    if (value && typeof value === 'object') {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, inert(v)]));
    }
    return value;
}

// A row, and every document inside it that has a currency of its own (the
// audit's before and after, a tariff's or a payment's row), in major units.
function inMajorUnits(record, exponents) {
    if (Array.isArray(record)) return record.map(item => inMajorUnits(item, exponents));
    if (!record || typeof record !== 'object') return record;
    const exponent = exponents.get(String(record.currency ?? '').trim().toUpperCase());
    const row = {};
    for (const [key, value] of Object.entries(record)) {
        const decimal = exponent !== undefined && MONEY_KEYS.has(key) && value !== null && typeof value !== 'object'
            ? minorToDecimal(value, exponent) : null;
        row[key] = decimal !== null ? decimal : inMajorUnits(value, exponents);
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
    // A byte order mark: Excel reads the file as UTF-8 only with one (titles
    // in Cyrillic), other spreadsheets skip it.
    downloadCSV(`\ufeff${csv}`, resource);
}
