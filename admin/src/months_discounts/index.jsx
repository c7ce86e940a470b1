// Months discounts: tiers by number of months bought; set and remove.
import React from 'react';
import { List, Datagrid, NumberField, Create, SimpleForm, NumberInput, required, DeleteWithConfirmButton } from 'react-admin';
import { exportForSpreadsheets } from '../common/exporter';

export const MonthsDiscountList = () => (
    <List sort={{ field: 'months', order: 'ASC' }} pagination={false} exporter={exportForSpreadsheets}>
        <Datagrid bulkActionButtons={false}>
            <NumberField source="months" />
            <NumberField source="percent" />
            <DeleteWithConfirmButton mutationMode="pessimistic" />
        </Datagrid>
    </List>
);

export const MonthsDiscountCreate = () => (
    <Create redirect="list">
        <SimpleForm>
            <NumberInput source="months" validate={required()} />
            <NumberInput source="percent" validate={required()} />
        </SimpleForm>
    </Create>
);

export default { list: MonthsDiscountList, create: MonthsDiscountCreate };
