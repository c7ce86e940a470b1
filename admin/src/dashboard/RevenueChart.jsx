// Revenue per day, one line per tariff and currency (recharts, loaded lazily).
// The lines are drawn in major units; the tooltip shows each day's exact
// amount and the axes the panel's date and number formats (common/format).
import React from 'react';
import { ResponsiveContainer, LineChart, Line, XAxis, YAxis, Tooltip, Legend, CartesianGrid } from 'recharts';
import { useFormat } from '../common/format';

const COLORS = ['#1976d2', '#d32f2f', '#388e3c', '#f57c00', '#7b1fa2', '#0097a7'];

export default function RevenueChart({ rows }) {
    const fmt = useFormat();
    const currencyOf = new Map(rows.map(r => [`${r.tariff_code} ${r.currency}`, r.currency]));
    const series = [...currencyOf.keys()];
    const byDay = new Map();
    for (const r of rows) {
        const key = `${r.tariff_code} ${r.currency}`;
        const day = byDay.get(r.day) || { day: r.day, minor: {} };
        day[key] = fmt.moneyNumber(r.paid, r.currency);
        day.minor[key] = r.paid;
        byDay.set(r.day, day);
    }
    const data = [...byDay.values()];
    // One currency: the axis in it; several: plain numbers (each line's own
    // currency is in its name and the tooltip).
    const currencies = [...new Set(currencyOf.values())];
    const tick = currencies.length === 1 ? v => fmt.moneyMark(v, currencies[0]) : v => fmt.number(v);
    return (
        <ResponsiveContainer width="100%" height={280}>
            <LineChart data={data} margin={{ left: 24 }}>
                <CartesianGrid strokeDasharray="3 3" />
                <XAxis dataKey="day" tickFormatter={fmt.dayMonth} />
                <YAxis tickFormatter={tick} width={90} />
                <Tooltip labelFormatter={fmt.date}
                    formatter={(value, name, item) => fmt.money(item.payload.minor[name], currencyOf.get(name))} />
                <Legend />
                {series.map((s, i) => (
                    <Line key={s} type="monotone" dataKey={s} stroke={COLORS[i % COLORS.length]} />
                ))}
            </LineChart>
        </ResponsiveContainer>
    );
}
