import { render } from "preact";
import { adoptLaunchToken } from "./api";
import { App } from "./app";
import "./styles.css";

adoptLaunchToken(); // km ui's /#token=…, before anything reads the address or calls the API
const root = document.getElementById("app");
if (root) render(<App />, root);
