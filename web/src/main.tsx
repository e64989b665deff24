import { render } from "preact";
import { adoptLaunchToken } from "./api";
import { App, askWhoAmI } from "./app";
import "./styles.css";

adoptLaunchToken(); // km ui's /#token=…, before anything reads the address or calls the API
askWhoAmI(); // the sign-in check leaves now, while the first render runs
const root = document.getElementById("app");
if (root) render(<App />, root);
