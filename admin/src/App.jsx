// The admin panel: react-admin over the api schema (one origin: /api/).
import React from 'react';
import { Admin, Resource } from 'react-admin';
import { dataProvider } from './providers/dataProvider';
import { authProvider } from './providers/authProvider';
import { i18nProvider } from './providers/i18nProvider';
import Dashboard from './dashboard/Dashboard';
import payments from './payments';
import users from './users';
import tariffs from './tariffs';
import personalDiscounts from './personal_discounts';
import monthsDiscounts from './months_discounts';
import promoCodes from './promo_codes';
import delivery from './delivery';
import audit from './audit';

export default function App() {
    return (
        <Admin
            title="billing.app.title"
            dataProvider={dataProvider}
            authProvider={authProvider}
            i18nProvider={i18nProvider}
            dashboard={Dashboard}
            requireAuth
            disableTelemetry
        >
            <Resource name="admin_payments" {...payments} />
            <Resource name="admin_users" {...users} />
            <Resource name="admin_tariffs" {...tariffs} />
            <Resource name="admin_personal_discounts" {...personalDiscounts} />
            <Resource name="months_discounts" {...monthsDiscounts} />
            <Resource name="admin_promo_codes" {...promoCodes} />
            <Resource name="outbox_dead" {...delivery} />
            <Resource name="admin_audit" {...audit} />
            <Resource name="admin_payment_events" />
            <Resource name="admin_price_history" />
            <Resource name="admin_renewal_charges" />
        </Admin>
    );
}
