// How the panel shows money and time to a person, in one place for every
// resource.  Amounts come from the api in minor units with a currency code;
// the decimals of each currency are the server's (GET /currencies, from the
// extension's own table), so the panel only formats: it never keeps a table
// of currencies nor computes a price.  Dates and times follow the panel's
// language, not the browser's, and switch with it.
import React, { useCallback, useMemo } from 'react';
import {
    FormDataConsumer, SelectInput, TextInput, required, useGetList, useLocaleState, useRecordContext,
    useTranslate,
} from 'react-admin';
import { Typography } from '@mui/material';

// The panel's languages as Intl locales; an admin whose browser names a region
// for the same language (en-GB) gets that region's conventions.
const REGIONS = { en: 'en-US', ru: 'ru-RU' };

export function intlLocale(locale) {
    const browser = typeof navigator !== 'undefined' ? navigator.languages || [navigator.language] : [];
    const same = browser.find(tag => tag && tag.split('-')[0].toLowerCase() === locale && tag.includes('-'));
    return same || REGIONS[locale] || locale;
}

// "42330", 2 -> "423.30": exact for any integer (no floating point), so that
// Intl formats the very amount the server holds.
export function minorToDecimal(minor, exponent) {
    const s = String(minor).trim();
    if (!/^-?\d+$/.test(s)) return null;
    const negative = s.startsWith('-');
    const digits = (negative ? s.slice(1) : s).replace(/^0+(?=\d)/, '');
    if (exponent === 0) return (negative ? '-' : '') + digits;
    const padded = digits.padStart(exponent + 1, '0');
    return `${negative ? '-' : ''}${padded.slice(0, -exponent)}.${padded.slice(-exponent)}`;
}

// What a person typed ("423.30", "423,30" where the language writes a decimal
// comma, "1 000") -> minor units by the server's exponent, or why not.  Only
// the form of the number is judged here; the server judges the amount.
export function majorToMinor(text, exponent, decimalComma) {
    const t = String(text ?? '').trim().replace(/[\s\u00a0\u202f]/g, '');
    const m = (decimalComma ? /^([+-]?)(\d*)(?:[.,](\d*))?$/ : /^([+-]?)(\d*)(?:[.](\d*))?$/).exec(t);
    if (!m || (m[2] === '' && !m[3])) return { error: 'invalid' };
    const fraction = m[3] || '';
    if (fraction.length > exponent) return { error: exponent === 0 ? 'whole' : 'decimals' };
    const digits = ((m[2] || '0') + fraction.padEnd(exponent, '0')).replace(/^0+(?=\d)/, '');
    const minor = (m[1] === '-' && /[1-9]/.test(digits) ? '-' : '') + digits;
    // Beyond 2^53 a JSON number would lose digits: send the digits as they are
    // (PostgREST reads a bigint argument from a string too).
    return { minor: Number.isSafeInteger(Number(minor)) ? Number(minor) : minor };
}

const DATE_TIME = { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' };
const DATE = { year: 'numeric', month: '2-digit', day: '2-digit', timeZone: 'UTC' };
const DAY_MONTH = { month: '2-digit', day: '2-digit', timeZone: 'UTC' };
// A timestamp as the api writes it (2026-12-02T01:40:37.123456+00:00), to
// find the ones inside JSON documents (the audit's rows, outbox messages).
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)$/;
const DAY = /^\d{4}-\d{2}-\d{2}$/;
// Columns that hold minor units of the row's currency, in the JSON documents
// the panel shows field by field (a tariff's or a payment's row in the audit).
export const MONEY_KEYS = new Set(['monthly_price', 'list_price', 'discount', 'total', 'old_price', 'new_price',
    'paid', 'refunded', 'amount', 'price']);

const cache = new Map();
function cached(key, make) {
    let v = cache.get(key);
    if (!v) {
        v = make();
        cache.set(key, v);
    }
    return v;
}

// Every supported currency with its exponent, read once per session.
function useCurrencies() {
    const { data } = useGetList('currencies',
        { pagination: { page: 1, perPage: 1000 }, sort: { field: 'code', order: 'ASC' } },
        { staleTime: Infinity, gcTime: Infinity });
    return data;
}

/*
 * The formatters for the current language:
 *   money(minor, currency)      "423,30 ₽" / "RUB 423.30"; '' until the currencies are known
 *   moneyNumber(minor, currency) the amount in major units as a number (a chart's scale)
 *   moneyMark(major, currency)  a mark of that scale ("₽300", "RUB 1,250.5")
 *   dateTime(ts)                "02.12.2026, 01:40" / "12/02/2026, 01:40 AM"
 *   date(day)                   "02.12.2026" for a date without time (2026-12-02)
 *   dayMonth(day)               "02.12" (a chart's axis)
 *   number(n)                   grouped digits of the language
 *   value(v, key, row)          any value of a JSON document: timestamps and money formatted
 *   toMinor(text, currency)     { minor } or { error: message, args }
 */
export function useFormat() {
    const [raLocale] = useLocaleState();
    const translate = useTranslate();
    const currencies = useCurrencies();
    return useMemo(() => {
        const locale = intlLocale(raLocale);
        const exponents = currencies ? new Map(currencies.map(c => [c.code, c.exponent])) : null;
        const exponentOf = code => (exponents && code ? exponents.get(String(code).trim().toUpperCase()) : undefined);
        const decimalComma = cached(`sep ${locale}`, () =>
            new Intl.NumberFormat(locale).formatToParts(1.5).find(p => p.type === 'decimal')?.value === ',');

        const money = (minor, currency) => {
            if (minor === null || minor === undefined || minor === '') return '';
            if (!exponents) return '';
            const code = String(currency ?? '').trim().toUpperCase();
            const exponent = exponentOf(code);
            const decimal = exponent === undefined ? null : minorToDecimal(minor, exponent);
            if (decimal === null) return translate('billing.money.unknown', { amount: minor, currency: code });
            const nf = cached(`money ${locale} ${code} ${exponent}`, () => new Intl.NumberFormat(locale, {
                style: 'currency', currency: code, minimumFractionDigits: exponent, maximumFractionDigits: exponent,
            }));
            return nf.format(decimal);
        };
        // A scale's mark in major units (a chart's axis): no needless zeros.
        const moneyMark = (major, currency) => {
            const code = String(currency ?? '').trim().toUpperCase();
            const exponent = exponentOf(code);
            if (exponent === undefined || major === null || major === undefined) return '';
            return cached(`mark ${locale} ${code} ${exponent}`, () => new Intl.NumberFormat(locale, {
                style: 'currency', currency: code, minimumFractionDigits: 0, maximumFractionDigits: exponent,
            })).format(major);
        };
        const moneyNumber = (minor, currency) => {
            const exponent = exponentOf(currency);
            const decimal = exponent === undefined ? null : minorToDecimal(minor, exponent);
            return decimal === null ? null : Number(decimal);
        };
        const dateTime = value => {
            if (value === null || value === undefined || value === '') return '';
            const d = new Date(value);
            if (Number.isNaN(d.getTime())) return String(value);
            return cached(`dt ${locale}`, () => new Intl.DateTimeFormat(locale, DATE_TIME)).format(d);
        };
        const day = (value, options, name) => {
            if (value === null || value === undefined || value === '') return '';
            const d = new Date(DAY.test(value) ? `${value}T00:00:00Z` : value);
            if (Number.isNaN(d.getTime())) return String(value);
            return cached(`${name} ${locale}`, () => new Intl.DateTimeFormat(locale, options)).format(d);
        };
        const number = n => (n === null || n === undefined || n === ''
            ? '' : cached(`n ${locale}`, () => new Intl.NumberFormat(locale)).format(n));
        const value = (v, key, row) => {
            if (v === undefined) return '';
            if (v === null) return '—';
            if (typeof v === 'string' && TIMESTAMP.test(v)) return dateTime(v);
            if (key && MONEY_KEYS.has(key) && row && row.currency && /^-?\d+$/.test(String(v))) {
                return money(v, row.currency);
            }
            if (Array.isArray(v)) return `[${v.map(x => value(x)).join(', ')}]`;
            if (typeof v === 'object') {
                return `{${Object.entries(v).map(([k, x]) => `${k}: ${value(x, k, v)}`).join(', ')}}`;
            }
            return typeof v === 'string' ? v : JSON.stringify(v);
        };
        const toMinor = (text, currency) => {
            const code = String(currency ?? '').trim().toUpperCase();
            if (!code) return { error: 'billing.money.no_currency' };
            if (!exponents) return { error: 'billing.money.loading' };
            const exponent = exponentOf(code);
            if (exponent === undefined) return { error: 'billing.money.no_such_currency', args: { currency: code } };
            const r = majorToMinor(text, exponent, decimalComma);
            if (r.error) {
                return { error: `billing.money.${r.error}`, args: { currency: code, decimals: exponent, example: example(exponent) } };
            }
            return r;
        };
        // A sample amount in the way a person would type it in this language.
        const example = exponent => (exponent === 0 ? '423'
            : `423${decimalComma ? ',' : '.'}${'30'.padEnd(exponent, '0').slice(0, exponent)}`);
        return {
            locale, currencies, exponentOf, money, moneyNumber, moneyMark, dateTime,
            date: v => day(v, DATE, 'd'), dayMonth: v => day(v, DAY_MONTH, 'dm'),
            number, value, toMinor, example,
        };
    }, [raLocale, translate, currencies]);
}

// ---- fields (lists, show pages) ----

const Text = ({ children, nowrap }) => (
    <Typography component="span" variant="body2" sx={nowrap ? { whiteSpace: 'nowrap' } : undefined}>{children}</Typography>
);

// An amount of the record: <MoneyField source="total" /> (the currency from
// the record's "currency", or currencySource, or currency="RUB").
export const MoneyField = ({ source, currency, currencySource = 'currency' }) => {
    const record = useRecordContext();
    const fmt = useFormat();
    if (!record) return null;
    return <Text nowrap>{fmt.money(record[source], currency ?? record[currencySource])}</Text>;
};

// A timestamp of the record as a date and time of the panel's language.
export const DateTimeField = ({ source }) => {
    const record = useRecordContext();
    const fmt = useFormat();
    if (!record) return null;
    return <Text nowrap>{fmt.dateTime(record[source])}</Text>;
};

// Any value of a JSON document, formatted field by field (timestamps, money).
export const JsonField = ({ source }) => {
    const record = useRecordContext();
    const fmt = useFormat();
    if (!record) return null;
    return <Text>{fmt.value(record[source])}</Text>;
};

// ---- inputs (forms) ----

// The currency of a new price: one of the server's currencies (a plain select:
// its menu finds a code as it is typed, and MUI's Autocomplete would add 16 kB).
export const CurrencyInput = props => {
    const fmt = useFormat();
    const choices = useMemo(() => (fmt.currencies || []).map(c => ({ id: c.code, name: c.code })), [fmt.currencies]);
    return <SelectInput choices={choices} isPending={!fmt.currencies} validate={required()} {...props} />;
};

// An amount typed in major units of the currency in the form's currencySource
// field (or of `currency`); the form holds the text, and toMinorUnits below
// turns it into what the server receives.
export const MoneyInput = ({ source, currency, currencySource = 'currency', ...rest }) => {
    const fmt = useFormat();
    const translate = useTranslate();
    const check = useCallback((v, all) => {
        if (v === null || v === undefined || String(v).trim() === '') return undefined;
        const r = fmt.toMinor(v, currency ?? all?.[currencySource]);
        return r.error ? { message: r.error, args: r.args } : undefined;
    }, [fmt, currency, currencySource]);
    const validate = useMemo(() => [required(), check], [check]);
    return (
        <FormDataConsumer>
            {({ formData }) => {
                const code = currency ?? formData?.[currencySource];
                const exponent = fmt.exponentOf(code);
                const help = exponent === undefined ? 'billing.money.input_no_currency'
                    : translate('billing.money.input_help', { currency: String(code).toUpperCase(), example: fmt.example(exponent) });
                return <TextInput source={source} validate={validate} helperText={help} {...rest} />;
            }}
        </FormDataConsumer>
    );
};

// For a form's transform: the typed amounts of `sources` as minor units.
export function toMinorUnits(fmt, data, sources, currencySource = 'currency') {
    const out = { ...data };
    for (const s of sources) {
        if (out[s] === undefined || out[s] === null || out[s] === '') continue;
        const r = fmt.toMinor(out[s], out[currencySource]);
        if (r.error) throw new Error(r.error);      // validation has shown it already
        out[s] = r.minor;
    }
    return out;
}
