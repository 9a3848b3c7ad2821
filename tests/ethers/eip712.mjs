// Independent EIP-712 for PoCo orders, with ethers v6 (what iExec's SDK uses).
// Input (file argv[2]): {"key": "0x..", "cases": [{"kind", "chainId", "hub", "order", "dragonSign"}]}
// Output (stdout): [{"hash", "ethersSign", "dragonSigner"}] in the same order.
import { readFileSync } from 'node:fs';
import { TypedDataEncoder, Wallet, verifyTypedData } from 'ethers';

// Written from PoCo's type strings, not from Dragon's code.
const TYPES = {
  app: { AppOrder: [
    ['address', 'app'], ['uint256', 'appprice'], ['uint256', 'volume'], ['bytes32', 'tag'],
    ['address', 'datasetrestrict'], ['address', 'workerpoolrestrict'], ['address', 'requesterrestrict'], ['bytes32', 'salt']] },
  dataset: { DatasetOrder: [
    ['address', 'dataset'], ['uint256', 'datasetprice'], ['uint256', 'volume'], ['bytes32', 'tag'],
    ['address', 'apprestrict'], ['address', 'workerpoolrestrict'], ['address', 'requesterrestrict'], ['bytes32', 'salt']] },
  workerpool: { WorkerpoolOrder: [
    ['address', 'workerpool'], ['uint256', 'workerpoolprice'], ['uint256', 'volume'], ['bytes32', 'tag'],
    ['uint256', 'category'], ['uint256', 'trust'], ['address', 'apprestrict'], ['address', 'datasetrestrict'],
    ['address', 'requesterrestrict'], ['bytes32', 'salt']] },
  request: { RequestOrder: [
    ['address', 'app'], ['uint256', 'appmaxprice'], ['address', 'dataset'], ['uint256', 'datasetmaxprice'],
    ['address', 'workerpool'], ['uint256', 'workerpoolmaxprice'], ['address', 'requester'], ['uint256', 'volume'],
    ['bytes32', 'tag'], ['uint256', 'category'], ['uint256', 'trust'], ['address', 'beneficiary'],
    ['address', 'callback'], ['string', 'params'], ['bytes32', 'salt']] },
};

const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const wallet = new Wallet(input.key);
const out = [];
for (const c of input.cases) {
  const [[name, fields]] = Object.entries(TYPES[c.kind]);
  const types = { [name]: fields.map(([type, n]) => ({ name: n, type })) };
  const domain = { name: 'iExecODB', version: '5.0.0', chainId: BigInt(c.chainId), verifyingContract: c.hub };
  const value = { ...c.order };
  delete value.sign;
  out.push({
    hash: TypedDataEncoder.hash(domain, types, value),
    ethersSign: await wallet.signTypedData(domain, types, value),
    dragonSigner: verifyTypedData(domain, types, value, c.dragonSign),
  });
}
process.stdout.write(JSON.stringify(out));
