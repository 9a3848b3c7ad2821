//! Dragon's contracts on a real anvil: `dragon chain deploy`, then a deal matched on chain from orders that
//! Dragon hashed and signed, which proves the Rust and Solidity sides agree on EIP-712 bit for bit.

use crate::fixtures::{KEY0, KEY1};
use crate::harness::{anvil, dragon_bin};
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::ProviderBuilder;
use alloy::signers::local::PrivateKeySigner;
use dragon::chain::contracts::hub::{DragonHub, IexecLibOrders_v5 as sol};
use dragon::chain::contracts::{app_registry::AppRegistry, token::RLC, workerpool_registry::WorkerpoolRegistry};
use dragon::chain::deploy::Deployment;
use dragon::money::Nrlc;
use dragon::order::{AppOrder, Domain, PocoOrder, RequestOrder, WorkerpoolOrder, signature};

fn deploy_with_cli(rpc: &str) -> Deployment {
    // One file per node: tests deploy in parallel.
    let port = rpc.rsplit(':').next().unwrap_or("0");
    let out = std::env::temp_dir().join(format!("dragon-deploy-{}-{port}.json", std::process::id()));
    let res = std::process::Command::new(dragon_bin())
        .args(["chain", "deploy", "--rpc-url", rpc, "--out", &out.to_string_lossy()])
        .env("DRAGON_PRIVATE_KEY", KEY0)
        .output()
        .expect("run dragon chain deploy");
    assert!(res.status.success(), "deploy failed: {}", String::from_utf8_lossy(&res.stderr));
    let d = Deployment::read(&out).expect("deployment file");
    let printed: Deployment = serde_json::from_slice(&res.stdout).expect("printed deployment");
    assert_eq!(printed, d);
    let _ = std::fs::remove_file(out);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_sets_up_hub_registries_and_default_categories() {
    let node = anvil();
    let d = deploy_with_cli(&node.url());
    assert_eq!(d.chain_id, 31337);
    let provider = ProviderBuilder::new().connect_http(node.url().parse().expect("url"));
    let hub = DragonHub::new(d.hub, &provider);

    let domain = hub.domain().call().await.expect("domain()");
    assert_eq!(domain.name, "iExecODB");
    assert_eq!(domain.version, "5.0.0");
    assert_eq!(domain.chainId, U256::from(31337));
    assert_eq!(domain.verifyingContract, d.hub);
    assert_eq!(hub.token().call().await.expect("token()"), d.token);
    assert_eq!(hub.appregistry().call().await.expect("appregistry()"), d.app_registry);
    assert_eq!(hub.datasetregistry().call().await.expect("datasetregistry()"), d.dataset_registry);
    assert_eq!(hub.workerpoolregistry().call().await.expect("workerpoolregistry()"), d.workerpool_registry);

    assert_eq!(hub.countCategory().call().await.expect("countCategory()"), U256::from(5));
    let expected = [("XS", 300u64), ("S", 1200), ("M", 3600), ("L", 10800), ("XL", 36000)];
    for (i, (name, time)) in expected.iter().enumerate() {
        let c = hub.viewCategory(U256::from(i)).call().await.expect("viewCategory");
        assert_eq!(c.name, *name);
        assert_eq!(c.workClockTimeRef, U256::from(*time));
    }
    // The local-market helper recognises a live deployment instead of deploying again.
    assert!(dragon::chain::deploy::is_live(&node.url(), &d).await.expect("is_live"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_signed_by_dragon_match_on_chain() {
    let node = anvil();
    let d = deploy_with_cli(&node.url());
    // KEY0 deployed (and owns the token: it mints); KEY1 is the requester; KEY0 also owns app and pool.
    let owner: PrivateKeySigner = KEY0.parse().expect("key");
    let requester: PrivateKeySigner = KEY1.parse().expect("key");
    let url: reqwest::Url = node.url().parse().expect("url");
    let as_owner = ProviderBuilder::new().wallet(EthereumWallet::from(owner.clone())).connect_http(url.clone());
    let as_requester = ProviderBuilder::new().wallet(EthereumWallet::from(requester.clone())).connect_http(url);

    // Funds: 1000 RLC each, deposited into the hub's escrow.
    let amount = U256::from(1_000u64 * Nrlc::PER_RLC);
    let rlc = RLC::new(d.token, &as_owner);
    for who in [owner.address(), requester.address()] {
        rlc.mint(who, amount).send().await.expect("mint").get_receipt().await.expect("mined");
    }
    for provider in [&as_owner, &as_requester] {
        RLC::new(d.token, provider)
            .approve(d.hub, amount)
            .send()
            .await
            .expect("approve")
            .get_receipt()
            .await
            .expect("mined");
        DragonHub::new(d.hub, provider)
            .deposit(amount)
            .send()
            .await
            .expect("deposit")
            .get_receipt()
            .await
            .expect("mined");
    }

    // Assets.
    let apps = AppRegistry::new(d.app_registry, &as_owner);
    let create_app = apps.createApp(
        owner.address(),
        "hello".into(),
        "DOCKER".into(),
        Bytes::from_static(b"docker.io/dragon/hello:1"),
        B256::repeat_byte(1),
        Bytes::new(),
    );
    let app = create_app.call().await.expect("createApp simulation");
    create_app.send().await.expect("createApp").get_receipt().await.expect("mined");
    let pools = WorkerpoolRegistry::new(d.workerpool_registry, &as_owner);
    let create_pool = pools.createWorkerpool(owner.address(), "pool".into());
    let pool = create_pool.call().await.expect("createWorkerpool simulation");
    create_pool.send().await.expect("createWorkerpool").get_receipt().await.expect("mined");

    // Orders, hashed and signed by Dragon.
    let domain = Domain::new(U256::from(d.chain_id), d.hub);
    let mut app_order = AppOrder {
        app,
        appprice: Nrlc::from_u64(3),
        volume: U256::from(10),
        tag: B256::ZERO,
        datasetrestrict: Address::ZERO,
        workerpoolrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: B256::repeat_byte(0xa1),
        sign: None,
    };
    let mut pool_order = WorkerpoolOrder {
        workerpool: pool,
        workerpoolprice: Nrlc::from_u64(5),
        volume: U256::from(4),
        tag: B256::ZERO,
        category: U256::from(1),
        trust: U256::from(1),
        apprestrict: Address::ZERO,
        datasetrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: B256::repeat_byte(0xb2),
        sign: None,
    };
    let mut request = RequestOrder {
        app,
        appmaxprice: Nrlc::from_u64(3),
        dataset: Address::ZERO,
        datasetmaxprice: Nrlc::ZERO,
        workerpool: Address::ZERO,
        workerpoolmaxprice: Nrlc::from_u64(7),
        requester: requester.address(),
        volume: U256::from(2),
        tag: B256::ZERO,
        category: U256::from(1),
        trust: U256::from(1),
        beneficiary: requester.address(),
        callback: Address::ZERO,
        params: "{\"iexec_args\":\"héllo 🐉\"}".into(),
        salt: B256::repeat_byte(0xc3),
        sign: None,
    };
    let hashes = (app_order.order_hash(&domain), pool_order.order_hash(&domain), request.order_hash(&domain));
    // The app order's v is written 0/1 instead of 27/28: the hub lifts it, and Dragon accepts it the same way.
    let mut low_v = signature::sign_digest(&owner, &hashes.0.0).expect("sign").to_vec();
    low_v[64] -= 27;
    assert_eq!(signature::recover_signer(&hashes.0.0, &low_v), Ok(owner.address()));
    app_order.set_sign(Bytes::from(low_v));
    pool_order.set_sign(signature::sign_digest(&owner, &hashes.1.0).expect("sign"));
    // The requester signs in the compact EIP-2098 form: the hub must accept it too.
    let full = signature::sign_digest(&requester, &hashes.2.0).expect("sign");
    let compact = signature::EcdsaSignature::parse(&full).expect("parse").to_compact();
    request.set_sign(Bytes::copy_from_slice(&compact));

    let hub = DragonHub::new(d.hub, &as_requester);
    let receipt = hub
        .matchOrders(
            sol::AppOrder::from(&app_order),
            sol::DatasetOrder::none(),
            sol::WorkerpoolOrder::from(&pool_order),
            sol::RequestOrder::from(&request),
        )
        .send()
        .await
        .expect("matchOrders accepted")
        .get_receipt()
        .await
        .expect("mined");
    assert!(receipt.status(), "matchOrders succeeded");
    let matched = receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<DragonHub::OrdersMatched>().ok())
        .expect("OrdersMatched emitted")
        .inner
        .data;
    assert_eq!(matched.appHash, hashes.0.0);
    assert_eq!(matched.workerpoolHash, hashes.1.0);
    assert_eq!(matched.requestHash, hashes.2.0);
    assert_eq!(matched.volume, U256::from(2));
    assert_eq!(hub.viewConsumed(hashes.2.0).call().await.expect("viewConsumed"), U256::from(2));
    assert_eq!(hub.viewConsumed(hashes.1.0).call().await.expect("viewConsumed"), U256::from(2));

    // A signature by the wrong key is refused on chain with PoCo's code for the request signature.
    let mut forged = request.clone();
    forged.salt = B256::repeat_byte(0xd4);
    let forged_hash = forged.order_hash(&domain);
    forged.set_sign(signature::sign_digest(&owner, &forged_hash.0).expect("sign"));
    let err = hub
        .matchOrders(
            sol::AppOrder::from(&app_order),
            sol::DatasetOrder::none(),
            sol::WorkerpoolOrder::from(&pool_order),
            sol::RequestOrder::from(&forged),
        )
        .call()
        .await
        .expect_err("a request signed by someone else is refused");
    assert!(err.to_string().contains("iExecV5-matchOrders-0x50"), "{err}");
}
