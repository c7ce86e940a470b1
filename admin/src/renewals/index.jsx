// Auto-renewal as the panel shows it: a subscription's renewal state and the
// automatic charges (api.admin_renewal_charges), the attempts at one end of
// term together.  The server decides everything shown; this only lays it out.
import React from 'react';
import { useGetList, useTranslate } from 'react-admin';
import { Table, TableBody, TableCell, TableHead, TableRow, Typography } from '@mui/material';
import { useFormat } from '../common/format';
import { StatusText } from '../payments';

// Why auto-renewal was last switched on or off (billing.auto_renew_reason).
export const ReasonText = ({ reason }) => {
    const t = useTranslate();
    if (!reason) return <span>—</span>;
    return <span data-reason={reason}>{t(`billing.renewals.reason.${reason}`, { _: reason })}</span>;
};

// The saved card as a person reads it: "visa •••• 4242".
export const cardText = s => (s.card_last4 ? `${s.card_brand || ''} •••• ${s.card_last4}`.trim() : '—');

// The automatic charges matching `filter` (user_id, or the one end of term of
// a payment), one table per end of term, newest end first, attempts in order.
export const RenewalCharges = ({ filter }) => {
    const t = useTranslate();
    const fmt = useFormat();
    const { data, isPending } = useGetList('admin_renewal_charges', {
        filter, sort: { field: 'renewal_of', order: 'DESC' }, pagination: { page: 1, perPage: 200 },
    });
    if (isPending) return null;
    if (!data || data.length === 0) return <Typography>{t('billing.renewals.no_charges')}</Typography>;
    const groups = [];
    for (const row of data) {
        const key = `${row.tariff_code} ${row.renewal_of}`;
        let g = groups.find(x => x.key === key);
        if (!g) groups.push(g = { key, tariff: row.tariff_code, renewal_of: row.renewal_of, rows: [] });
        g.rows.push(row);
    }
    return groups.map(g => (
        <div key={g.key} data-renewal-of={g.renewal_of} style={{ marginBottom: 12 }}>
            <Typography variant="subtitle2">
                {t('billing.renewals.term', { tariff: g.tariff, end: fmt.dateTime(g.renewal_of) })}
            </Typography>
            <Table size="small">
                <TableHead>
                    <TableRow>
                        <TableCell>{t('billing.renewals.attempt')}</TableCell>
                        <TableCell>{t('billing.users.status')}</TableCell>
                        <TableCell>{t('billing.renewals.amount')}</TableCell>
                        <TableCell>{t('billing.renewals.failure_code')}</TableCell>
                        <TableCell>{t('billing.renewals.decline_code')}</TableCell>
                        <TableCell>{t('billing.renewals.at')}</TableCell>
                    </TableRow>
                </TableHead>
                <TableBody>
                    {[...g.rows].sort((a, b) => a.renewal_attempt - b.renewal_attempt).map(r => (
                        <TableRow key={r.id} data-attempt={r.renewal_attempt}>
                            <TableCell>{r.renewal_attempt}</TableCell>
                            <TableCell><StatusText status={r.status} /></TableCell>
                            <TableCell>{fmt.money(r.total, r.currency)}</TableCell>
                            <TableCell>{r.failure_code || '—'}</TableCell>
                            <TableCell>{r.decline_code || '—'}</TableCell>
                            <TableCell>{fmt.dateTime(r.at)}</TableCell>
                        </TableRow>
                    ))}
                </TableBody>
            </Table>
        </div>
    ));
};
