use jobs::prelude::*;

#[job_executor("LoadCustomer")]
async fn load_customer(id: u32) -> Result<String, JobError> {
    Ok(format!("customer {id}"))
}

#[job_executor("LoadPrices")]
async fn load_prices() -> Result<Vec<u32>, JobError> {
    Ok(vec![3, 4])
}

#[job_executor("Invoice")]
async fn invoice(inputs: (Vec<u32>, String)) -> Result<String, JobError> {
    Ok(format!("{} owes {}", inputs.1, inputs.0.iter().sum::<u32>()))
}

fn main() {
    let mut flow = Flow::new();
    let customer = flow.start::<load_customer>(7);
    let prices = flow.start::<load_prices>(jobs::NoArgs);
    flow.join::<invoice>((&customer, &prices));
}
