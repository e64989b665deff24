import { Link } from "../components/Link";
import { PageHeader } from "../components/ui";
import { useTitle } from "../hooks";
import { paths } from "../router";

export function NotFoundPage() {
  useTitle("Not found");
  return (
    <section data-testid="page-notfound">
      <PageHeader title="Page not found" />
      <p>
        There is nothing at this address. Go to the <Link to={paths.overview}>overview</Link>.
      </p>
    </section>
  );
}
