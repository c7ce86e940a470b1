// Revenue, refunds, subscriptions, purchases, promo codes and delivery, from
// one call of /rpc/admin_dashboard.  The chart library loads only here, lazily.
import React, { lazy, Suspense, useEffect, useState } from 'react';
import { Card, CardContent, CardHeader, Grid, ToggleButton, ToggleButtonGroup, Typography, Table, TableBody, TableCell, TableHead, TableRow } from '@mui/material';
import { Title, useTranslate, useNotify, Loading } from 'react-admin';
import { rpc } from '../providers/httpClient';
import { useFormat } from '../common/format';

const RevenueChart = lazy(() => import('./RevenueChart'));

const Stat = ({ label, value }) => (
    <div style={{ marginRight: 24, display: 'inline-block' }}>
        <Typography variant="caption" color="text.secondary">{label}</Typography>
        <Typography variant="h6">{value ?? '—'}</Typography>
    </div>
);

export default function Dashboard() {
    const t = useTranslate();
    const notify = useNotify();
    const fmt = useFormat();
    const [days, setDays] = useState(30);
    const [data, setData] = useState(null);

    useEffect(() => {
        let live = true;
        rpc('admin_dashboard', { days })
            .then(d => live && setData(d))
            .catch(e => notify(e.message, { type: 'error' }));
        return () => { live = false; };
    }, [days, notify]);

    return (
        <div>
            <Title title={t('billing.dashboard.title')} />
            <ToggleButtonGroup exclusive size="small" value={days} onChange={(e, v) => v && setDays(v)} sx={{ mt: 2 }}>
                <ToggleButton value={30}>{t('billing.dashboard.days', { days: 30 })}</ToggleButton>
                <ToggleButton value={90}>{t('billing.dashboard.days', { days: 90 })}</ToggleButton>
            </ToggleButtonGroup>
            {!data ? <Loading /> : (
                <Grid container spacing={2} sx={{ mt: 1 }}>
                    <Grid size={12}>
                        <Card>
                            <CardHeader title={t('billing.dashboard.revenue')} subheader={t('billing.dashboard.revenue_help', { tz: data.time_zone })} />
                            <CardContent>
                                <Suspense fallback={<Loading />}>
                                    <RevenueChart rows={data.revenue} />
                                </Suspense>
                            </CardContent>
                        </Card>
                    </Grid>
                    <Grid size={{ xs: 12, md: 6 }}>
                        <Card>
                            <CardHeader title={t('billing.dashboard.totals')} />
                            <CardContent>
                                {data.totals.length === 0 && <Typography>{t('billing.dashboard.no_data')}</Typography>}
                                {data.totals.map(row => (
                                    <div key={row.currency} data-currency={row.currency}>
                                        <Stat label={t('billing.dashboard.currency')} value={row.currency} />
                                        <Stat label={t('billing.dashboard.paid')} value={fmt.money(row.paid, row.currency)} />
                                        <Stat label={t('billing.dashboard.refunded')} value={fmt.money(row.refunded, row.currency)} />
                                        <Stat label={t('billing.dashboard.refund_rate')} value={`${fmt.number(row.refund_rate)} %`} />
                                    </div>
                                ))}
                            </CardContent>
                        </Card>
                    </Grid>
                    <Grid size={{ xs: 12, md: 6 }}>
                        <Card>
                            <CardHeader title={t('billing.dashboard.subscriptions')} />
                            <CardContent>
                                <Stat label={t('billing.dashboard.active')} value={data.subscriptions.active} />
                                <Stat label={t('billing.dashboard.grace')} value={data.subscriptions.grace} />
                                <Stat label={t('billing.dashboard.blocked')} value={data.subscriptions.blocked} />
                                <br />
                                <Stat label={t('billing.dashboard.new')} value={data.purchases.new} />
                                <Stat label={t('billing.dashboard.renewing')} value={data.purchases.renewing} />
                            </CardContent>
                        </Card>
                    </Grid>
                    <Grid size={{ xs: 12, md: 6 }}>
                        <Card>
                            <CardHeader title={t('billing.dashboard.promo_codes')} />
                            <CardContent>
                                <Table size="small">
                                    <TableHead>
                                        <TableRow>
                                            <TableCell>{t('resources.admin_promo_codes.fields.code')}</TableCell>
                                            <TableCell>{t('resources.admin_promo_codes.fields.percent')}</TableCell>
                                            <TableCell>{t('resources.admin_promo_codes.fields.redemptions')}</TableCell>
                                        </TableRow>
                                    </TableHead>
                                    <TableBody>
                                        {data.promo_codes.map(c => (
                                            <TableRow key={c.code + c.deleted}>
                                                <TableCell>{c.code}</TableCell>
                                                <TableCell>{c.percent}</TableCell>
                                                <TableCell>{c.redemptions}{c.max_redemptions ? ` / ${c.max_redemptions}` : ''}</TableCell>
                                            </TableRow>
                                        ))}
                                    </TableBody>
                                </Table>
                            </CardContent>
                        </Card>
                    </Grid>
                    <Grid size={{ xs: 12, md: 6 }}>
                        <Card data-card="renewals">
                            <CardHeader title={t('billing.dashboard.renewals')} subheader={t('billing.dashboard.renewals_help')} />
                            <CardContent>
                                <Stat label={t('billing.dashboard.renewals_failed')} value={data.renewals.failed} />
                                <Stat label={t('billing.dashboard.renewals_recovered')} value={data.renewals.recovered} />
                                <Stat label={t('billing.dashboard.recovery_rate')}
                                    value={data.renewals.recovery_rate === null ? null : `${fmt.number(data.renewals.recovery_rate)} %`} />
                            </CardContent>
                        </Card>
                    </Grid>
                    <Grid size={{ xs: 12, md: 6 }}>
                        <Card>
                            <CardHeader title={t('billing.dashboard.delivery')} />
                            <CardContent>
                                <Stat label={t('billing.dashboard.pending')} value={data.delivery.pending} />
                                <Stat label={t('billing.dashboard.dead')} value={data.delivery.dead} />
                                <Stat label={t('billing.dashboard.oldest_pending')} value={data.delivery.oldest_pending_seconds} />
                                <br />
                                <Stat label={t('billing.dashboard.poll_due')} value={data.stripe_poll.due} />
                                <Stat label={t('billing.dashboard.poll_waiting')} value={data.stripe_poll.waiting} />
                            </CardContent>
                        </Card>
                    </Grid>
                </Grid>
            )}
        </div>
    );
}
