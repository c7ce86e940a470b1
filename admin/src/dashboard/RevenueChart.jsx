// Revenue per day, one line per tariff and currency (recharts, loaded lazily).
import React from 'react';
import { ResponsiveContainer, LineChart, Line, XAxis, YAxis, Tooltip, Legend, CartesianGrid } from 'recharts';

const COLORS = ['#1976d2', '#d32f2f', '#388e3c', '#f57c00', '#7b1fa2', '#0097a7'];

export default function RevenueChart({ rows }) {
    const series = [...new Set(rows.map(r => `${r.tariff_code} ${r.currency}`))];
    const byDay = new Map();
    for (const r of rows) {
        const day = byDay.get(r.day) || { day: r.day };
        day[`${r.tariff_code} ${r.currency}`] = r.paid;
        byDay.set(r.day, day);
    }
    const data = [...byDay.values()];
    return (
        <ResponsiveContainer width="100%" height={280}>
            <LineChart data={data}>
                <CartesianGrid strokeDasharray="3 3" />
                <XAxis dataKey="day" />
                <YAxis />
                <Tooltip />
                <Legend />
                {series.map((s, i) => (
                    <Line key={s} type="monotone" dataKey={s} stroke={COLORS[i % COLORS.length]} />
                ))}
            </LineChart>
        </ResponsiveContainer>
    );
}
